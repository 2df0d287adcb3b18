//! Audit mode (`verify --audit-headers`): a header share judged on its own, against the nbits
//! in its header, without a job. For checking historical headers; a node never does this.

use super::U256;
use super::{Batch, FingerprintSet, HashTask, ShareView, Status, TaskMeta, Validator, Verdict};
use bytemuck::Zeroable;
use xxhash_rust::xxh3::xxh3_128_with_seed;

impl Validator {
    /// Audit mode: check 6 of a header share judged on its own (1 is done; 2–5 need a job).
    pub(super) fn check_header(
        &mut self,
        view: &ShareView<'_>,
        header: &[u8; 80],
        network_target: U256,
        batch: Option<&mut Batch>,
    ) -> Result<(), Verdict> {
        let id = view.id;
        // 6. duplicate: the same 80 bytes, per prevhash.
        let prev: [u8; 32] = header[4..36].try_into().expect("32");
        let fp = xxh3_128_with_seed(header, self.seed);
        let seen = &mut self.headers_seen;
        let mut at = match seen.iter().rposition(|s| s.0 == prev) {
            Some(at) => at,
            None => {
                let window = self.cfg.header_prevhash_window.max(1);
                while seen.len() >= window {
                    if let Some((_, old)) = seen.pop_front() {
                        self.header_seen -= old.len();
                    }
                }
                seen.push_back((prev, FingerprintSet::default()));
                seen.len() - 1
            }
        };
        if seen[at].1.contains(&fp) {
            return Err(Verdict::rejected(id, Status::Duplicate));
        }
        // At the cap the oldest prevhashes' sets go first (their shares are stale work);
        // the share's own prevhash over the cap alone makes it stale.
        while self.header_seen >= self.cfg.max_seen_entries {
            if at == 0 {
                return Err(Verdict::rejected(id, Status::Stale));
            }
            if let Some((_, old)) = seen.pop_front() {
                self.header_seen -= old.len();
            }
            at -= 1;
        }
        seen[at].1.insert(fp);
        self.header_seen += 1;
        let Some(batch) = batch else {
            return Ok(());
        };
        let mut task = HashTask::zeroed();
        task.job = HashTask::HEADER;
        task.data = *header;
        batch.push_task(
            task,
            TaskMeta {
                id,
                share_target: view.target,
                network_target,
            },
        );
        Ok(())
    }
}
