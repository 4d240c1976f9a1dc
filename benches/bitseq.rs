//! Benchmark of `pyln_core::bitseq::Bitseq` against Go libnetwork's `bitseq`.
//!
//! Plain `harness = false` program (no criterion): every measurement is repeated
//! several times and the median is reported, because the bench box is a noisy,
//! shared 2-core machine. Run with `cargo bench --bench bitseq`; it prints a
//! markdown table (pyln figure, Go baseline, ratio, target, met?) on stdout and
//! progress on stderr. Total runtime is a few seconds to a few tens of seconds.
//!
//! Measurements:
//! 1. `set_any` on a fresh 2^24-bit mask until full, ns per bit.
//! 2. A full 2^24-bit mask with 8,192 random holes: alternate `unset(random
//!    allocated ordinal)` and `set_any(false)` (which refills the first hole);
//!    each op is timed on its own (timer overhead subtracted), µs per op.
//! 3. Serialized size of that fragmented mask, and `to_bytes` / `from_bytes` time.
//! 4. 2^64-bit mask: 1,000,000 random `set` then the same ordinals `unset`, µs per op.

use pyln_core::bitseq::{Bitseq, BitseqError};
use std::hint::black_box;
use std::time::{Duration, Instant};

// Go libnetwork bitseq baselines (figures supplied with the task), and pyln's targets.
const GO_SET_ANY_SEQ_NS: f64 = 195.0;
const TARGET_SET_ANY_SEQ_NS: f64 = 40.0;
const GO_FRAG_UNSET_US: f64 = 229.0;
const GO_FRAG_SET_ANY_US: f64 = 256.0;
const TARGET_FRAG_US: f64 = 2.0;
/// Go's serialized size of the fragmented handle: 194 KB (taken as 194,000 bytes).
const GO_FRAG_BYTES: f64 = 194_000.0;

const SMALL_BITS: u64 = 1 << 24;
const HOLES: usize = 8_192;
const BIG_OPS: usize = 1_000_000;

/// SplitMix64: tiny, deterministic, good enough to scatter ordinals.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Median, minimum and maximum of a set of samples.
#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(samples: &[f64]) -> Stats {
    assert!(!samples.is_empty());
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Stats {
        median,
        min: v[0],
        max: v[n - 1],
    }
}

/// Formats `x` with about three significant digits.
fn fmt_num(x: f64) -> String {
    let digits = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else if x >= 1.0 {
        2
    } else {
        3
    };
    format!("{x:.digits$}")
}

/// Formats `x` with a unit, e.g. "12.3 ns".
fn fmt_val(x: f64, unit: &str) -> String {
    format!("{} {unit}", fmt_num(x))
}

fn fmt_stats(s: Stats, unit: &str, reps: usize) -> String {
    format!(
        "{} (min {}, max {}; n={reps})",
        fmt_val(s.median, unit),
        fmt_num(s.min),
        fmt_num(s.max),
    )
}

struct Row {
    what: String,
    pyln: String,
    baseline: String,
    ratio: String,
    target: String,
    met: String,
}

fn row(what: &str, pyln: String, baseline: Option<f64>, median: f64, unit: &str) -> Row {
    Row {
        what: what.to_string(),
        pyln,
        baseline: baseline.map_or("—".into(), |b| fmt_val(b, unit)),
        ratio: baseline.map_or("—".into(), |b| format!("{:.4}", median / b)),
        target: "—".into(),
        met: "n/a (informational)".into(),
    }
}

/// An informational row (no baseline) from the samples of one measurement.
fn info(what: &str, samples: &[f64], unit: &str, reps: usize) -> Row {
    let s = stats(samples);
    row(what, fmt_stats(s, unit, reps), None, s.median, unit)
}

fn with_target(mut r: Row, target: String, met: bool) -> Row {
    r.target = target;
    r.met = if met { "yes".into() } else { "**NO**".into() };
    r
}

/// Median cost of one `Instant::now()` (subtracted from per-op timings).
fn timer_overhead_ns() -> f64 {
    let mut samples = Vec::new();
    for _ in 0..15 {
        const N: u32 = 200_000;
        let start = Instant::now();
        for _ in 0..N {
            black_box(Instant::now());
        }
        samples.push(start.elapsed().as_nanos() as f64 / f64::from(N));
    }
    stats(&samples).median
}

/// Sets the first free ordinal until the mask is full; returns the elapsed time.
fn fill(s: &mut Bitseq, serial: bool) -> Duration {
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        match s.set_any(black_box(serial)) {
            Ok(o) => {
                black_box(o);
                n += 1;
            }
            Err(BitseqError::NoBitAvailable) => break,
            Err(e) => panic!("set_any: {e}"),
        }
    }
    let t = start.elapsed();
    assert_eq!(n, SMALL_BITS, "fill handed out a wrong number of ordinals");
    t
}

/// Measurement 1: fresh 2^24-bit mask filled with set_any; ns per bit for each rep.
/// Returns the per-rep samples and the last full mask.
fn bench_fill(serial: bool, reps: usize) -> (Vec<f64>, Bitseq) {
    let mut samples = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let mut s = Bitseq::new(u128::from(SMALL_BITS)).unwrap();
        let t = fill(&mut s, serial);
        samples.push(t.as_nanos() as f64 / SMALL_BITS as f64);
        assert_eq!(s.unselected(), 0);
        assert_eq!(s.run_count(), 1);
        last = Some(black_box(s));
    }
    (samples, last.unwrap())
}

/// A full 2^24-bit mask with `HOLES` distinct random ordinals cleared.
fn fragment(full: &Bitseq, rng: &mut SplitMix64) -> Bitseq {
    let mut s = full.clone();
    let mut cleared = 0;
    while cleared < HOLES {
        if s.unset(rng.next() % SMALL_BITS).unwrap() {
            cleared += 1;
        }
    }
    assert_eq!(s.unselected(), HOLES as u128);
    s
}

/// A random ordinal that is currently set (the lookup is not timed).
fn random_allocated(s: &Bitseq, rng: &mut SplitMix64) -> u64 {
    loop {
        let o = rng.next() % SMALL_BITS;
        if s.is_set(o).unwrap() {
            return o;
        }
    }
}

struct FragResult {
    unset_us: Vec<f64>,
    set_any_us: Vec<f64>,
    pair_us: Vec<f64>,
    runs_min: usize,
    runs_max: usize,
}

/// Measurement 2: alternate unset(random allocated) / set_any(false) on the
/// fragmented mask. Each op is timed on its own, minus the timer's cost; a second
/// loop without per-op timers gives the cost of a pair as a cross-check.
///
/// Every rep (and the cross-check) starts again from a copy of `frag`, and
/// `pairs` is kept small next to `HOLES`: set_any always fills the lowest hole
/// while unset makes a uniformly random one, so after k pairs the mask below
/// roughly ordinal k/HOLES * 2^24 is one full run, unsets landing there are
/// refilled at once by the next set_any, and the work degenerates into cheap,
/// cache-hot churn on the first run (and the run count falls), which would
/// flatter the numbers.
fn bench_frag(
    frag: &Bitseq,
    rng: &mut SplitMix64,
    reps: usize,
    pairs: usize,
    timer_ns: f64,
) -> FragResult {
    let mut r = FragResult {
        unset_us: Vec::new(),
        set_any_us: Vec::new(),
        pair_us: Vec::new(),
        runs_min: usize::MAX,
        runs_max: 0,
    };
    let mut ords = vec![0u64; pairs];
    for _ in 0..reps {
        // Per-op timing.
        let mut s = frag.clone();
        let (mut t_unset, mut t_any) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..pairs {
            let o = random_allocated(&s, rng);
            let t0 = Instant::now();
            let was = s.unset(black_box(o));
            let t1 = Instant::now();
            let got = s.set_any(black_box(false));
            let t2 = Instant::now();
            assert_eq!(was, Ok(true));
            black_box(got.unwrap());
            t_unset += t1 - t0;
            t_any += t2 - t1;
        }
        let per = |d: Duration| ((d.as_nanos() as f64 / pairs as f64) - timer_ns).max(0.0) / 1e3;
        r.unset_us.push(per(t_unset));
        r.set_any_us.push(per(t_any));
        assert_eq!(s.unselected(), HOLES as u128);
        r.runs_min = r.runs_min.min(s.run_count());
        r.runs_max = r.runs_max.max(s.run_count());

        // Whole pairs, no per-op timers: pick the ordinals first (untimed). An
        // ordinal only becomes a hole through its own unset (set_any only fills
        // holes), so distinct picks are all still allocated when their turn comes.
        let mut s = frag.clone();
        let mut chosen = std::collections::HashSet::with_capacity(pairs);
        for slot in ords.iter_mut() {
            *slot = loop {
                let o = random_allocated(&s, rng);
                if chosen.insert(o) {
                    break o;
                }
            };
        }
        let start = Instant::now();
        for &o in &ords {
            black_box(s.unset(black_box(o)).unwrap());
            black_box(s.set_any(black_box(false)).unwrap());
        }
        let t = start.elapsed();
        r.pair_us.push(t.as_nanos() as f64 / pairs as f64 / 1e3);
        assert_eq!(s.unselected(), HOLES as u128);
        r.runs_min = r.runs_min.min(s.run_count());
        r.runs_max = r.runs_max.max(s.run_count());
    }
    r
}

/// Measurement 3: to_bytes / from_bytes of the fragmented mask, µs per call.
fn bench_codec(frag: &Bitseq, reps: usize, iters: usize) -> (Vec<f64>, Vec<f64>) {
    let bytes = frag.to_bytes();
    let back = Bitseq::from_bytes(&bytes).unwrap();
    assert!(
        back == *frag && back.to_bytes() == bytes,
        "round trip changed the mask"
    );
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(black_box(frag).to_bytes());
        }
        enc.push(start.elapsed().as_nanos() as f64 / iters as f64 / 1e3);
        let start = Instant::now();
        for _ in 0..iters {
            black_box(Bitseq::from_bytes(black_box(&bytes)).unwrap());
        }
        dec.push(start.elapsed().as_nanos() as f64 / iters as f64 / 1e3);
    }
    (enc, dec)
}

/// Measurement 4: 2^64-bit mask, BIG_OPS random set() then unset() of the same
/// ordinals (in another random order); µs per op, and the peak run count.
fn bench_big(rng: &mut SplitMix64, reps: usize) -> (Vec<f64>, Vec<f64>, usize) {
    let (mut set_us, mut unset_us) = (Vec::new(), Vec::new());
    let mut peak_runs = 0;
    for _ in 0..reps {
        let ords: Vec<u64> = (0..BIG_OPS).map(|_| rng.next()).collect();
        // Fisher-Yates shuffle for the unset order.
        let mut order = ords.clone();
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let mut s = Bitseq::new(1u128 << 64).unwrap();
        let mut failed = 0usize;
        let start = Instant::now();
        for &o in &ords {
            if s.set(black_box(o)).is_err() {
                failed += 1; // a repeated random ordinal (practically never)
            }
        }
        set_us.push(start.elapsed().as_nanos() as f64 / BIG_OPS as f64 / 1e3);
        peak_runs = peak_runs.max(s.run_count());
        let start = Instant::now();
        for &o in &order {
            black_box(s.unset(black_box(o)).unwrap());
        }
        unset_us.push(start.elapsed().as_nanos() as f64 / BIG_OPS as f64 / 1e3);
        assert_eq!(s.unselected(), 1u128 << 64, "{failed} failed sets");
        assert_eq!(s.run_count(), 1);
        drop(black_box(s));
    }
    (set_us, unset_us, peak_runs)
}

fn print_table(rows: &[Row]) {
    println!("| what | pyln (median) | Go libnetwork | pyln / Go | target | met? |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.what, r.pyln, r.baseline, r.ratio, r.target, r.met
        );
    }
}

fn main() {
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut rng = SplitMix64(0x5eed_b175_0000_2024);
    let timer_ns = timer_overhead_ns();
    eprintln!("Instant::now() costs {timer_ns:.1} ns (subtracted from per-op timings)");

    // 1. Sequential set_any until full.
    const FILL_REPS: usize = 5;
    eprintln!("[1] set_any on a fresh 2^24-bit mask until full, {FILL_REPS} reps ...");
    let (samples, full) = bench_fill(false, FILL_REPS);
    let s = stats(&samples);
    rows.push(with_target(
        row(
            "1. set_any(serial=false), fresh 2^24-bit mask until full, per bit",
            fmt_stats(s, "ns", FILL_REPS),
            Some(GO_SET_ANY_SEQ_NS),
            s.median,
            "ns",
        ),
        format!("≤ {TARGET_SET_ANY_SEQ_NS} ns"),
        s.median <= TARGET_SET_ANY_SEQ_NS,
    ));
    const SERIAL_REPS: usize = 3;
    eprintln!("[1b] same with set_any(serial=true), {SERIAL_REPS} reps ...");
    let (samples, _) = bench_fill(true, SERIAL_REPS);
    rows.push(info(
        "1b. set_any(serial=true), same (informational)",
        &samples,
        "ns",
        SERIAL_REPS,
    ));

    // 2. Fragmented mask: unset random allocated / set_any refills the first hole.
    let frag = fragment(&full, &mut rng);
    drop(full);
    const FRAG_REPS: usize = 41;
    const FRAG_PAIRS: usize = 512;
    eprintln!(
        "[2] fragmented 2^24-bit mask ({} runs), {FRAG_REPS} reps x {FRAG_PAIRS} unset+set_any pairs ...",
        frag.run_count()
    );
    let fr = bench_frag(&frag, &mut rng, FRAG_REPS, FRAG_PAIRS, timer_ns);
    let runs_note = format!(
        "{} runs at start, {}–{} at the end of a rep",
        frag.run_count(),
        fr.runs_min,
        fr.runs_max
    );
    let s = stats(&fr.unset_us);
    rows.push(with_target(
        row(
            "2a. unset(random allocated ordinal), 2^24 mask full but 8,192 holes, per op",
            fmt_stats(s, "µs", FRAG_REPS),
            Some(GO_FRAG_UNSET_US),
            s.median,
            "µs",
        ),
        format!("≤ {TARGET_FRAG_US} µs"),
        s.median <= TARGET_FRAG_US,
    ));
    let s = stats(&fr.set_any_us);
    rows.push(with_target(
        row(
            "2b. set_any(serial=false) refilling the first hole, same mask, per op",
            fmt_stats(s, "µs", FRAG_REPS),
            Some(GO_FRAG_SET_ANY_US),
            s.median,
            "µs",
        ),
        format!("≤ {TARGET_FRAG_US} µs"),
        s.median <= TARGET_FRAG_US,
    ));
    let s = stats(&fr.pair_us);
    rows.push(row(
        &format!("2c. unset + set_any pair, no per-op timer (cross-check; {runs_note})"),
        fmt_stats(s, "µs", FRAG_REPS),
        Some(GO_FRAG_UNSET_US + GO_FRAG_SET_ANY_US),
        s.median,
        "µs",
    ));

    // 3. Serialized size and codec speed of the fragmented handle.
    let size = frag.to_bytes().len();
    let expect = 16 + 12 * frag.run_count();
    let ratio = size as f64 / GO_FRAG_BYTES;
    rows.push(Row {
        what: format!(
            "3a. to_bytes().len() of the fragmented mask ({} runs; 16 + 12·runs = {expect})",
            frag.run_count()
        ),
        pyln: format!("{size} B ({:.1} KB)", size as f64 / 1e3),
        baseline: "194 KB".into(),
        ratio: format!("{ratio:.3}"),
        target: "same encoding, same order (16 + 12·runs B)".into(),
        met: if size == expect && (0.5..=2.0).contains(&ratio) {
            "yes".into()
        } else {
            "**NO**".into()
        },
    });
    const CODEC_REPS: usize = 7;
    const CODEC_ITERS: usize = 100;
    eprintln!("[3] to_bytes / from_bytes, {CODEC_REPS} reps x {CODEC_ITERS} calls ...");
    let (enc, dec) = bench_codec(&frag, CODEC_REPS, CODEC_ITERS);
    rows.push(info(
        "3b. to_bytes() of the fragmented mask, per call",
        &enc,
        "µs",
        CODEC_REPS,
    ));
    rows.push(info(
        "3c. from_bytes() of the fragmented mask, per call",
        &dec,
        "µs",
        CODEC_REPS,
    ));
    drop(frag);

    // 4. The 2^64-bit mask.
    const BIG_REPS: usize = 3;
    eprintln!("[4] 2^64-bit mask, {BIG_REPS} reps x {BIG_OPS} set + {BIG_OPS} unset ...");
    let (set_us, unset_us, peak) = bench_big(&mut rng, BIG_REPS);
    rows.push(info(
        &format!("4a. set(random), 2^64-bit mask, 1,000,000 ops (up to {peak} runs), per op"),
        &set_us,
        "µs",
        BIG_REPS,
    ));
    rows.push(info(
        "4b. unset() of those ordinals in random order, per op",
        &unset_us,
        "µs",
        BIG_REPS,
    ));

    println!();
    print_table(&rows);
    println!();
    println!(
        "Medians over n repetitions (min/max in brackets). Per-op times in 2a/2b exclude \
         the measured Instant::now() cost of {timer_ns:.1} ns. Total bench time {:.1} s.",
        started.elapsed().as_secs_f64()
    );
}
