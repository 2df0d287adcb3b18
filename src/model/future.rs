//! Stratum V2's future jobs: a standard job announced before its block (`NewMiningJob` with
//! the future-job flag) waits here until the `SetNewPrevHash` that starts the block activates
//! it; only then is it a job shares are judged against. The node's jobs reader and `verify`
//! pass every job message through one [`FutureJobs`] before it reaches a validator, so the
//! validators (and the node's job log, replayed to every partition) hold live jobs only.

use super::job::{Job, JobError, JobStep, MAX_JOB_ID};
use std::collections::{HashMap, VecDeque};

/// Future jobs waiting for their activation, at most `cap` (the oldest is forgotten first:
/// its activation would then be refused, as for an id never announced).
#[derive(Debug)]
pub struct FutureJobs {
    waiting: HashMap<String, Job>,
    order: VecDeque<String>,
    cap: usize,
}

impl FutureJobs {
    pub fn new(cap: usize) -> FutureJobs {
        FutureJobs {
            waiting: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Future jobs waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// What a job message means now: `Some(job)` to add to the validators (a live job as it
    /// came, or the future job its activation completes: with the activation's prevhash,
    /// nbits and min_ntime, and clean, since a new prev hash makes the jobs of the old one
    /// stale), `None` for a future job kept until its activation. An activation of an id no
    /// future job waits under is an error, never a guess.
    pub fn resolve(&mut self, job: Job) -> Result<Option<Job>, JobError> {
        match job.step {
            JobStep::Live => Ok(Some(job)),
            JobStep::Future => {
                if job.job_id.is_empty() || job.job_id.len() > MAX_JOB_ID {
                    return Err(JobError::JobId(job.job_id.len()));
                }
                if job.merkle_root.is_none()
                    || !job.coinb1.is_empty()
                    || !job.coinb2.is_empty()
                    || !job.merkle_branch.is_empty()
                {
                    return Err(JobError::FutureWithoutRoot);
                }
                let id = job.job_id.clone();
                if self.waiting.insert(id.clone(), job).is_none() {
                    self.order.push_back(id);
                }
                while self.waiting.len() > self.cap {
                    match self.order.pop_front() {
                        Some(old) => {
                            self.waiting.remove(&old);
                        }
                        None => break,
                    }
                }
                Ok(None)
            }
            JobStep::Activation => {
                let Some(mut f) = self.waiting.remove(&job.job_id) else {
                    return Err(JobError::NoFutureJob(job.job_id));
                };
                self.order.retain(|id| *id != job.job_id);
                f.prevhash = job.prevhash;
                f.nbits = job.nbits;
                f.ntime = job.ntime;
                f.clean_jobs = true;
                f.step = JobStep::Live;
                Ok(Some(f))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future(id: &str) -> Job {
        Job {
            job_id: id.into(),
            prevhash: [0; 32],
            coinb1: Vec::new(),
            coinb2: Vec::new(),
            merkle_branch: Vec::new(),
            version: 0x2000_0000,
            nbits: 0,
            ntime: 0,
            clean_jobs: false,
            version_mask: 0x1fff_e000,
            extranonce_size: None,
            merkle_root: Some([7; 32]),
            step: JobStep::Future,
        }
    }

    fn activation(id: &str) -> Job {
        Job {
            prevhash: [5; 32],
            nbits: 0x1d00_ffff,
            ntime: 1000,
            merkle_root: None,
            version: 0,
            version_mask: 0,
            step: JobStep::Activation,
            ..future(id)
        }
    }

    #[test]
    fn a_future_job_waits_for_its_prev_hash() {
        let mut f = FutureJobs::new(2);
        assert_eq!(f.resolve(future("17")), Ok(None));
        assert_eq!(f.len(), 1);
        let live = f.resolve(activation("17")).unwrap().unwrap();
        assert_eq!(live.step, JobStep::Live);
        assert_eq!(
            (live.prevhash, live.nbits, live.ntime),
            ([5; 32], 0x1d00_ffff, 1000)
        );
        assert_eq!(
            (live.merkle_root, live.version),
            (Some([7; 32]), 0x2000_0000)
        );
        assert!(live.clean_jobs, "a new prev hash");
        assert!(f.is_empty());
        // Once only: a second activation finds nothing waiting.
        assert_eq!(
            f.resolve(activation("17")),
            Err(JobError::NoFutureJob("17".into()))
        );
        // A live job passes as it is.
        let plain = Job {
            step: JobStep::Live,
            ..future("x")
        };
        assert_eq!(f.resolve(plain.clone()), Ok(Some(plain)));
    }

    #[test]
    fn the_waiting_room_is_bounded_and_takes_standard_jobs_only() {
        let mut f = FutureJobs::new(2);
        for id in ["a", "b", "c"] {
            f.resolve(future(id)).unwrap();
        }
        assert_eq!(f.len(), 2);
        assert_eq!(
            f.resolve(activation("a")),
            Err(JobError::NoFutureJob("a".into())),
            "the oldest was forgotten"
        );
        assert!(f.resolve(activation("c")).unwrap().is_some());
        let coinbase = Job {
            coinb1: vec![1; 10],
            ..future("d")
        };
        assert_eq!(f.resolve(coinbase), Err(JobError::FutureWithoutRoot));
        assert_eq!(
            f.resolve(Job {
                merkle_root: None,
                ..future("e")
            }),
            Err(JobError::FutureWithoutRoot)
        );
    }
}
