//! Routing decision latency of the ACD core (`src/acd/routing.rs`) with 1,000 agents and
//! 2,000 waiting callers (defaults; env `AGENTS`, `CALLERS`, `ROUNDS`): all agents are
//! talking and the callers wait with mixed priorities and skill needs; each round one agent
//! finishes (wrap-up ends), `route()` picks the caller for it, the agent answers, and a new
//! caller arrives, so the queue stays 2,000 deep. Reported: p50/p99/max of `route()`, for
//! each strategy.
//!
//! Run: `cargo bench --bench acd_routing`.

#![allow(clippy::unwrap_used)] // a benchmark that cannot start has nothing to report

use std::time::{Duration, Instant};

use hotline::acd::routing::{Acd, QueueConfig, Strategy};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let agents = env("AGENTS", 1_000);
    let callers = env("CALLERS", 2_000);
    let rounds = env("ROUNDS", 5_000) as usize;
    let skills = ["mandarin", "housing", "social", "transport", "dialect"];
    println!("| strategy | agents | waiting | rounds | p50 us | p99 us | max us |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for strategy in [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::Skills,
    ] {
        let start = Instant::now();
        let t = |ms: u64| start + Duration::from_millis(ms);
        let mut q = QueueConfig::new("general");
        q.strategy = strategy;
        q.wrap_up = Duration::ZERO;
        let mut acd = Acd::new([q]);
        for id in 0..agents {
            let mut s: Vec<(&str, u8)> = vec![("mandarin", (id % 10) as u8 + 1)];
            s.push((skills[1 + (id as usize) % 4], ((id * 7) % 10) as u8 + 1));
            acd.add_agent(id, &s, t(0));
            acd.login(id, &["general"], t(0)).unwrap();
        }
        // Everyone busy: one caller each, answered.
        let mut next_call = 0u64;
        for _ in 0..agents {
            acd.enqueue(next_call, "general", 0, &[], t(1)).unwrap();
            next_call += 1;
        }
        let mut on_call = Vec::new();
        for o in acd.route(t(1)) {
            acd.answered(o.call, o.agents[0], t(1)).unwrap();
            on_call.push(o.agents[0]);
        }
        for i in 0..callers {
            let need: Vec<&str> = if i % 5 == 0 {
                vec![skills[1 + (i as usize) % 4]]
            } else {
                vec![]
            };
            acd.enqueue(next_call, "general", (i % 3) as i32, &need, t(2 + i))
                .unwrap();
            next_call += 1;
        }
        let mut times = Vec::with_capacity(rounds);
        let mut clock = 10_000u64;
        for r in 0..rounds {
            clock += 10;
            let slot = r % on_call.len();
            let agent = on_call[slot];
            acd.call_ended(agent, "general", t(clock)).unwrap();
            let before = Instant::now();
            let offers = acd.route(t(clock));
            times.push(before.elapsed());
            for o in offers {
                let a = o.agents[0];
                acd.answered(o.call, a, t(clock)).unwrap();
                on_call[slot] = a;
            }
            acd.enqueue(next_call, "general", (r % 3) as i32, &[], t(clock))
                .unwrap();
            next_call += 1;
        }
        times.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!(
            "| {strategy:?} | {agents} | {} | {rounds} | {:.0} | {:.0} | {:.0} |",
            acd.waiting_in("general"),
            us(p(0.5)),
            us(p(0.99)),
            us(*times.last().unwrap())
        );
    }
}
