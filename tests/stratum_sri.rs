//! SRI's `sv1_api` (the Stratum V1 types of the Stratum Reference Implementation) as an
//! independent client of the gateway: every line the gateway sends parses as SRI's
//! messages, and SRI-built requests (configure, subscribe, authorize, submit) are answered
//! as SRI expects, with the node's verdicts behind them.

mod kafka_support;
use kafka_support::*;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use sharecheck::model::Job;
use sharecheck::stratum::miner::{MinerJob, Search};
use sharecheck::wire::binary::encode_job;
use std::time::Duration;
use sv1_api::client_to_server as c2s;
use sv1_api::json_rpc::{Message, Response};
use sv1_api::methods::Server2Client;
use sv1_api::server_to_client as s2c;
use sv1_api::utils::{Extranonce, HexU32Be};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

struct Sri {
    lines: Lines<BufReader<OwnedReadHalf>>,
    wr: OwnedWriteHalf,
    notifies: Vec<s2c::Notify<'static>>,
    difficulty: Option<f64>,
}

impl Sri {
    async fn send(&mut self, m: Message) {
        let line = serde_json::to_string(&m).unwrap() + "\n";
        self.wr.write_all(line.as_bytes()).await.unwrap();
    }

    /// The response to `id`; every line before it must parse as SRI's messages, and every
    /// notification as one of SRI's server-to-client methods.
    async fn response(&mut self, id: u64) -> Response {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
                .await
                .expect("a line from the gateway within 30 s")
                .unwrap()
                .expect("the connection stays open");
            let m: Message = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("sv1_api cannot parse {line}: {e}"));
            match m {
                Message::OkResponse(r) | Message::ErrorResponse(r) => {
                    assert_eq!(r.id, id, "{line}");
                    return r;
                }
                Message::Notification(_) => match Server2Client::try_from(m) {
                    Ok(Server2Client::Notify(n)) => self.notifies.push(n),
                    Ok(Server2Client::SetDifficulty(d)) => self.difficulty = Some(d.value),
                    other => panic!("unexpected notification {line}: {other:?}"),
                },
                Message::StandardRequest(_) => panic!("the gateway sent a request: {line}"),
            }
        }
    }
}

#[test]
fn sris_sv1_client_parses_everything_and_is_answered() {
    let env = Env::new(
        "stratum-sri",
        "[stratum]\nstart_difficulty = 5.960464477539063e-8\nmin_difficulty = 1e-12\n\
         shares_per_minute = 0.0\nmetrics_listen = \"\"\n",
    );
    let _node = env.node("node.log");
    let job = Job {
        job_id: "sri1".into(),
        prevhash: std::array::from_fn(|i| i as u8),
        coinb1: vec![1; 42],
        coinb2: vec![2; 40],
        merkle_branch: vec![[7; 32]],
        version: 0x2000_0000,
        nbits: 0x1d00_ffff,
        ntime: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32,
        clean_jobs: true,
        version_mask: 0x1fff_e000,
        extranonce_size: None,
        merkle_root: None,
        step: Default::default(),
    };
    let p: BaseProducer = env.client_config().create().unwrap();
    p.send(
        BaseRecord::to(&env.topic("jobs"))
            .key("sri1")
            .payload(&encode_job(&job)),
    )
    .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let g = env.spawn(&["stratum", "--listen", &addr, "--instance", "3"], "gw.log");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(conversation(&addr, &job));
    drop(g);
}

async fn conversation(addr: &str, job: &Job) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let sock = loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => break s,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("gateway not listening: {e}"),
        }
    };
    let (rd, wr) = sock.into_split();
    let mut s = Sri {
        lines: BufReader::new(rd).lines(),
        wr,
        notifies: Vec::new(),
        difficulty: None,
    };

    let configure = c2s::Configure::new(1, Some(HexU32Be(0xffff_ffff)), Some(HexU32Be(2)));
    s.send(configure.into()).await;
    let r = s.response(1).await;
    let c = s2c::Configure::try_from(&r).expect("SRI reads the configure response");
    let vr = c.version_rolling.expect("version rolling granted");
    assert!(vr.version_rolling);
    assert_eq!(vr.version_rolling_mask, HexU32Be(0x1fff_e000));

    let subscribe = c2s::Subscribe {
        id: 2,
        agent_signature: "sri-sv1/4".into(),
        extranonce1: None,
    };
    s.send(subscribe.try_into().unwrap()).await;
    let r = s.response(2).await;
    let sub = s2c::Subscribe::try_from(&r).expect("SRI reads the subscribe response");
    let en1: Vec<u8> = sub.extra_nonce1.into();
    assert_eq!(en1.len(), 4);
    assert_eq!(en1[0], 3, "the gateway's instance byte");
    assert_eq!(sub.extra_nonce2_size, 4);

    let authorize = c2s::Authorize {
        id: 3,
        name: "sri.worker".into(),
        password: "x".into(),
    };
    s.send(authorize.into()).await;
    let r = s.response(3).await;
    let a = s2c::GeneralResponse::try_from(&r).unwrap();
    assert!(a.into_authorize("sri.worker".into()).is_ok());

    // The job as SRI parsed it, mined with sharecheck's miner.
    let n = s
        .notifies
        .last()
        .expect("a mining.notify after subscribe")
        .clone();
    let mj = MinerJob {
        job_id: n.job_id.clone(),
        prevhash: Vec::<u8>::from(n.prev_hash).try_into().unwrap(),
        coinb1: n.coin_base1.into(),
        coinb2: n.coin_base2.into(),
        branch: n
            .merkle_branch
            .into_iter()
            .map(|b| Vec::<u8>::from(b).try_into().unwrap())
            .collect(),
        version: n.version.0,
        nbits: n.bits.0,
        ntime: n.time.0,
        clean: n.clean_jobs,
    };
    assert_eq!(
        mj.prevhash, job.prevhash,
        "SRI's prevhash is the job's, in header order"
    );
    assert_eq!(
        (mj.version, mj.nbits, mj.ntime),
        (job.version, job.nbits, job.ntime)
    );
    assert_eq!(mj.branch, job.merkle_branch);
    let difficulty = s.difficulty.expect("mining.set_difficulty after subscribe");
    let search = |meet| Search {
        extranonce1: &en1,
        extranonce2_size: 4,
        difficulty,
        meet,
        version_bits: Some(0x0000_2000),
    };
    let submit = |id: u64, f: &sharecheck::stratum::miner::Found| c2s::Submit {
        user_name: "sri.worker".into(),
        job_id: f.job_id.clone(),
        extra_nonce2: Extranonce::try_from(f.extranonce2.clone()).unwrap(),
        time: HexU32Be(f.ntime),
        nonce: HexU32Be(f.nonce),
        version_bits: f.version_bits.map(HexU32Be),
        id,
    };
    let good = search(true).find(&mj, 0).unwrap();
    s.send(submit(4, &good).into()).await;
    let r = s.response(4).await;
    assert!(r.error.is_none(), "{r:?}");
    assert!(s2c::GeneralResponse::try_from(&r)
        .unwrap()
        .into_submit()
        .is_ok());

    // SRI reads the error replies too: [code, message, null].
    s.send(submit(5, &good).into()).await;
    let e = s.response(5).await.error.expect("a duplicate is an error");
    assert_eq!(e.code, 22, "{e:?}");
    let low = search(false).find(&mj, 1).unwrap();
    s.send(submit(6, &low).into()).await;
    let e = s.response(6).await.error.expect("a low share is an error");
    assert_eq!(e.code, 23, "{e:?}");
}
