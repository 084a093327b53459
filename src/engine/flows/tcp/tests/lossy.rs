//! Whole transfers between two engines back to back through seeded faulty wires.

use super::*;
use crate::engine::sim::wire::Faults;
use crate::engine::sim::{Pair, Transfer};

fn lossy(loss_ppm: u32) -> Faults {
    Faults {
        loss_ppm,
        queue_frames: 128,
        bytes_per_second: 100 << 20,
        delay: ms(1),
        ..Faults::clean()
    }
}

#[test]
fn a_megabyte_each_way_through_three_percent_loss() {
    let mut pair = Pair::new(1500, lossy(30_000), lossy(30_000), 1);
    let outcome = pair.transfer(&Transfer::new(1 << 20, 1 << 20));
    eprintln!(
        "{outcome:?} steps {} turns {}\n{:?}\n{:?}\n{:?} {:?}",
        pair.steps,
        pair.turns,
        pair.a.engine.counters(),
        pair.b.engine.counters(),
        pair.ab.stats,
        pair.ba.stats
    );
    outcome.unwrap();
}

/// A fault mix drawn from `seed`: 0-10% loss, some duplicates and reordering, a queue of 8 to
/// 512 frames that pushes back or drops, either MTU, with or without SO_PEEK_OFF.
#[derive(Debug, Clone, Copy)]
struct Mix {
    faults: Faults,
    mtu: u32,
    peek_offset: bool,
}

fn mix(seed: u64) -> Mix {
    let mut rng = crate::engine::testutil::Rng::new(seed.wrapping_mul(0x9e37_79b9) + 1);
    let mut pick = |n: usize| rng.below(n) as u32;
    let queue_frames = [8, 16, 32, 64, 128, 256, 512][pick(7) as usize];
    let faults = Faults {
        loss_ppm: pick(100_001),
        duplicate_ppm: if pick(3) == 0 { pick(20_001) } else { 0 },
        reorder_ppm: if pick(3) == 0 { pick(50_001) } else { 0 },
        reorder_delay: Duration::from_micros(u64::from(pick(2000)) + 1),
        queue_frames,
        push_back: pick(4) != 0,
        bytes_per_second: [10 << 20, 100 << 20, 1 << 30][pick(3) as usize],
        delay: Duration::from_micros(u64::from(pick(5000))),
    };
    Mix {
        faults,
        mtu: if pick(3) == 0 { 65520 } else { 1500 },
        peek_offset: pick(4) != 0,
    }
}

/// Runs one seed: the transfer must complete byte for byte in bounded virtual time, resend
/// little more than the wires lost, and drop nothing where the wire pushes back.
fn run_seed(seed: u64, len: u64) -> Result<String, String> {
    let m = mix(seed);
    let mut pair = Pair::new(m.mtu, m.faults, m.faults, seed);
    pair.a.engine = crate::engine::Engine::new(
        crate::engine::EngineConfig {
            tcp_peek_offset: m.peek_offset,
            ..pair.a.engine.config().clone()
        },
        pair.a.engine_registry(),
    );
    let mut transfer = Transfer::new(len, len);
    transfer.limit = Duration::from_secs(300);
    let outcome = pair
        .transfer(&transfer)
        .map_err(|e| format!("seed {seed} {m:?}: {e}"))?;
    let (a, b) = (pair.a.engine.counters(), pair.b.engine.counters());
    let resent = a.tcp_bytes_retransmitted + b.tcp_bytes_retransmitted;
    let lost = pair.ab.stats.lost_bytes + pair.ba.stats.lost_bytes;
    let dropped = pair.ab.stats.dropped_full + pair.ba.stats.dropped_full;
    let report = format!(
        "seed {seed}: {:?} resent {resent} lost {lost} dropped {dropped} timeouts {} {}",
        outcome.elapsed,
        a.tcp_timeouts + b.tcp_timeouts,
        format_args!("{m:?}")
    );
    // What the wires dropped (lost, or a full queue that drops) is the least that must go
    // again, and a resend may be lost again; a frame reordered or duplicated may cost a
    // spurious resend or two (a hole taken for lost, a probe) until the threshold has grown,
    // and a lost ACK a tail probe.
    let frame = u64::from(m.mtu) + 14;
    let (ab, ba) = (pair.ab.stats, pair.ba.stats);
    let wasted = lost + (ab.dropped_full + ba.dropped_full) * frame;
    let confusing = ab.reordered + ba.reordered + ab.duplicated + ba.duplicated;
    let bound = 2 * wasted + (2 * confusing + 4) * frame;
    if resent > bound {
        return Err(format!("{report}: resent more than {bound}"));
    }
    if m.faults.push_back && a.dropped_tx_queue_full + b.dropped_tx_queue_full > 0 {
        return Err(format!(
            "{report}: frames dropped on a wire that pushes back"
        ));
    }
    // 256 KiB each way; at 10% loss and 5 ms each way a few timeouts fit in this.
    if outcome.elapsed > Duration::from_secs(4) {
        return Err(format!("{report}: too slow"));
    }
    Ok(report)
}

#[test]
fn transfers_complete_intact_over_many_seeds_and_fault_mixes() {
    let mut failures = Vec::new();
    for seed in 1..=64 {
        match run_seed(seed, 256 << 10) {
            Ok(report) => eprintln!("{report}"),
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
