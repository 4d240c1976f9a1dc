//! Scale benchmark of the simulator (no Python): `cargo bench --bench sim --
//! NODES [DURATION [WRITES]]` runs the steady-state scenario with default LAN
//! parameters and prints wall time, events per second and memory. Other
//! parameters: SIM_PARAMS="scenario=split-brain,loss=0.02".

use std::time::Instant;

use pyln_core::sim::scenario::{rss_bytes, Params, Runner, Value};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let nodes: Vec<usize> = args
        .first()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1000]);
    let duration: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let writes: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000.0);
    println!(
        "{:>7} {:>8} {:>8} {:>8} {:>12} {:>11} {:>10} {:>10} {:>9}",
        "nodes",
        "setup s",
        "run s",
        "wall s",
        "events",
        "events/s",
        "RSS MiB",
        "KiB/node",
        "p50 ms"
    );
    for n in nodes {
        let mut p = Params::default();
        p.set("nodes", Value::Num(n as f64)).unwrap();
        p.set("duration", Value::Num(duration)).unwrap();
        p.set("writes", Value::Num(writes)).unwrap();
        // Extra parameters: SIM_PARAMS="scenario=split-brain,loss=0.02".
        for kv in std::env::var("SIM_PARAMS")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
        {
            let (k, v) = kv
                .split_once('=')
                .expect("SIM_PARAMS wants key=value pairs");
            let v = v
                .parse::<f64>()
                .map(Value::Num)
                .unwrap_or_else(|_| Value::Str(v.to_owned()));
            p.set(k, v).unwrap();
        }
        let t = Instant::now();
        let mut r = Runner::new(p).unwrap();
        let rep = r.report();
        let wall = t.elapsed().as_secs_f64();
        println!(
            "{:>7} {:>8.1} {:>8.1} {:>8.1} {:>12} {:>11.0} {:>10.0} {:>10.1} {:>9.0}",
            n,
            rep.setup_wall_s,
            rep.run_wall_s,
            wall,
            rep.events,
            rep.events as f64 / wall,
            rss_bytes() as f64 / 1048576.0,
            rep.memory_per_node_bytes / 1024.0,
            rep.entry_convergence.p50
        );
        if std::env::var_os("PYLN_SIM_DEBUG").is_some() {
            eprintln!("{rep:?}");
        }
    }
}
