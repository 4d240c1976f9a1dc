//! Scale benchmark of the simulator (no Python): `cargo bench --bench sim --
//! NODES [DURATION [WRITES]]` runs the steady-state scenario with default LAN
//! parameters and prints wall time, events per second and memory. Other
//! parameters: SIM_PARAMS="scenario=split-brain,loss=0.02".

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;

/// Counts live heap bytes, so that memory per node is measured exactly (RSS
/// also holds freed memory the allocator keeps). It wraps mimalloc, the
/// allocator of the Python extension (`pyln sim`), so that both measure the same.
/// Each thread counts in its own cache line (the simulator runs on several
/// threads: one shared counter cost more than the allocations themselves);
/// the live heap is the sum, and its peak is sampled every millisecond.
struct Counting;
static INNER: MiMalloc = MiMalloc;

#[repr(align(128))]
struct Stripe(AtomicIsize);
const STRIPES: usize = 16;
static LIVE: [Stripe; STRIPES] = [const { Stripe(AtomicIsize::new(0)) }; STRIPES];
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn count(delta: isize) {
    let k = MY_STRIPE.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT_STRIPE.fetch_add(1, Relaxed) % STRIPES);
        }
        s.get()
    });
    LIVE[k].0.fetch_add(delta, Relaxed);
}

fn live() -> usize {
    LIVE.iter().map(|s| s.0.load(Relaxed)).sum::<isize>().max(0) as usize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { INNER.alloc(l) };
        if !p.is_null() {
            count(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { INNER.dealloc(p, l) };
        count(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { INNER.realloc(p, l, new) };
        if !q.is_null() {
            count(new as isize - l.size() as isize);
        }
        q
    }
}

/// Samples the live heap into PEAK until `stop` is set.
/// With SIM_HEAP_TRACE set, also prints the live heap every wall second.
fn sample_peak(stop: &AtomicBool) {
    let trace = std::env::var_os("SIM_HEAP_TRACE").is_some();
    let t0 = Instant::now();
    let mut next = 1.0;
    while !stop.load(Relaxed) {
        let l = live();
        PEAK.fetch_max(l, Relaxed);
        if trace && t0.elapsed().as_secs_f64() >= next {
            eprintln!("heap {next:>5.0} s {:>8.1} MiB", l as f64 / 1048576.0);
            next += 1.0;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[global_allocator]
static A: Counting = Counting;

extern "C" {
    /// mimalloc's option setter (in its C library, linked with the allocator).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

use pyln_core::sim::scenario::{rss_bytes, Params, Runner, Value};

fn main() {
    // As `pyln sim` does (rust/src/py.rs, keep_freed_pages): mimalloc keeps
    // freed pages (mi_option_purge_delay = -1) instead of purging them and
    // faulting them back in.
    // MIMALLOC_PURGE_DELAY in the environment (read by mimalloc itself) wins:
    // a delay of 1,000 ms kept RSS within 2% at 2,000 nodes, 10% slower.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter of a global option.
        unsafe { mi_option_set(15, -1) };
    }
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
        "{:>7} {:>8} {:>8} {:>8} {:>12} {:>11} {:>10} {:>10} {:>12} {:>12} {:>9}",
        "nodes", "setup s", "run s", "wall s", "events", "events/s", "RSS MiB", "peak MiB", "heap B/node", "B/member",
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
        let heap0 = live();
        PEAK.store(heap0, Relaxed);
        let stop = AtomicBool::new(false);
        let (per_node, rep) = std::thread::scope(|sc| {
            sc.spawn(|| sample_peak(&stop));
            let mut r = Runner::new(p).unwrap();
            // Heap of the cluster just formed, per node and per member entry.
            let per_node = live().saturating_sub(heap0) as f64 / n as f64;
            let rep = r.report();
            PEAK.fetch_max(live(), Relaxed);
            stop.store(true, Relaxed);
            (per_node, rep)
        });
        let wall = t.elapsed().as_secs_f64();
        println!(
            "{:>7} {:>8.1} {:>8.1} {:>8.1} {:>12} {:>11.0} {:>10.0} {:>10.0} {:>12.0} {:>12.0} {:>9.0}",
            n,
            rep.setup_wall_s,
            rep.run_wall_s,
            wall,
            rep.events,
            rep.events as f64 / wall,
            rss_bytes() as f64 / 1048576.0,
            PEAK.load(Relaxed) as f64 / 1048576.0,
            per_node,
            per_node / n as f64,
            rep.entry_convergence.p50
        );
        if std::env::var_os("PYLN_SIM_DEBUG").is_some() {
            eprintln!("{rep:?}");
        }
    }
}
