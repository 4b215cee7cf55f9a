//! Routing on a virtual clock: `t(s)` is `s` seconds after the start.
#![allow(clippy::unwrap_used)] // in a test, a panic is a failure report

use super::*;

fn clock() -> impl Fn(u64) -> Instant {
    let start = Instant::now();
    move |s| start + Duration::from_secs(s)
}

fn queue(name: &str, strategy: Strategy) -> QueueConfig {
    QueueConfig {
        strategy,
        ..QueueConfig::new(name)
    }
}

/// Agents 1..=n logged into `general` one second apart (agent 1 idle the longest).
fn acd(strategy: Strategy, n: u64, t: &impl Fn(u64) -> Instant) -> Acd {
    let mut acd = Acd::new([
        queue("general", strategy),
        queue("overflow", Strategy::LongestIdle),
    ]);
    for id in 1..=n {
        acd.add_agent(id, &[("mandarin", 5)], t(0));
        acd.login(id, &["general"], t(id)).unwrap();
    }
    acd
}

fn offered(o: &[Offer]) -> Vec<(u64, Vec<u64>)> {
    o.iter().map(|o| (o.call, o.agents.clone())).collect()
}

#[test]
fn longest_idle_gets_the_call_and_wrap_up_ends_on_time() {
    let t = clock();
    let mut acd = acd(Strategy::LongestIdle, 3, &t);
    acd.enqueue(100, "general", 0, &[], t(10)).unwrap();
    assert_eq!(offered(&acd.route(t(10))), [(100, vec![1])]);
    assert!(
        acd.route(t(10)).is_empty(),
        "a ringing call is not offered twice"
    );
    acd.answered(100, 1, t(12)).unwrap();
    assert_eq!(
        acd.agent(1).unwrap().state,
        AgentState::OnCall { call: 100 }
    );
    acd.call_ended(1, "general", t(100)).unwrap();
    // 30 s of wrap-up: no call for agent 1 until 130 s.
    acd.tick(t(129));
    assert!(matches!(
        acd.agent(1).unwrap().state,
        AgentState::WrapUp { .. }
    ));
    acd.enqueue(101, "general", 0, &[], t(129)).unwrap();
    assert_eq!(offered(&acd.route(t(129))), [(101, vec![2])]);
    acd.tick(t(130));
    assert_eq!(acd.agent(1).unwrap().state, AgentState::Available);
}

#[test]
fn round_robin_remembers_who_was_offered_last() {
    let t = clock();
    let mut acd = acd(Strategy::RoundRobin, 3, &t);
    let mut got = Vec::new();
    for call in 0..4 {
        acd.enqueue(call, "general", 0, &[], t(10 + call)).unwrap();
        let o = acd.route(t(10 + call));
        let agent = o[0].agents[0];
        got.push(agent);
        acd.answered(call, agent, t(10 + call)).unwrap();
        acd.call_ended(agent, "general", t(11 + call)).unwrap();
        acd.resume(agent, t(11 + call)).unwrap();
    }
    assert_eq!(got, [1, 2, 3, 1]);
}

#[test]
fn fewest_calls_evens_out_the_load() {
    let t = clock();
    let mut acd = acd(Strategy::FewestCalls, 2, &t);
    // Agent 1 has already answered two calls.
    for call in 0..2 {
        acd.enqueue(call, "general", 0, &[], t(10)).unwrap();
        let o = acd.route(t(10));
        let agent = o[0].agents[0];
        acd.answered(call, agent, t(10)).unwrap();
        acd.call_ended(agent, "general", t(11)).unwrap();
        acd.resume(agent, t(11)).unwrap();
    }
    assert_eq!(
        acd.agent(1).unwrap().answered + acd.agent(2).unwrap().answered,
        2
    );
    assert_eq!(acd.agent(1).unwrap().answered, 1, "alternated");
    acd.answered_count_bump(1);
    acd.enqueue(9, "general", 0, &[], t(20)).unwrap();
    assert_eq!(offered(&acd.route(t(20))), [(9, vec![2])]);
}

#[test]
fn ring_all_rings_everyone_and_the_first_answer_stops_the_rest() {
    let t = clock();
    let mut acd = acd(Strategy::RingAll, 3, &t);
    acd.enqueue(7, "general", 0, &[], t(10)).unwrap();
    assert_eq!(offered(&acd.route(t(10))), [(7, vec![1, 2, 3])]);
    let ev = acd.answered(7, 2, t(12)).unwrap();
    assert_eq!(
        ev,
        [Event::StopRinging {
            call: 7,
            agents: vec![1, 3]
        }]
    );
    assert_eq!(acd.agent(1).unwrap().state, AgentState::Available);
    assert_eq!(acd.agent(2).unwrap().state, AgentState::OnCall { call: 7 });
}

#[test]
fn skills_based_needs_every_skill_then_prefers_proficiency() {
    let t = clock();
    let mut q = queue("general", Strategy::Skills);
    q.skills = vec!["mandarin".into()];
    let mut acd = Acd::new([q]);
    acd.add_agent(1, &[("mandarin", 9)], t(0));
    acd.add_agent(2, &[("mandarin", 4), ("housing", 3)], t(0));
    acd.add_agent(3, &[("mandarin", 6), ("housing", 8)], t(0));
    acd.add_agent(4, &[("housing", 10)], t(0)); // lacks the queue's skill
    for id in 1..=4 {
        acd.login(id, &["general"], t(1)).unwrap();
    }
    acd.enqueue(1, "general", 0, &["housing"], t(5)).unwrap();
    assert_eq!(
        offered(&acd.route(t(5))),
        [(1, vec![3])],
        "6 + 8 beats 4 + 3; agent 4 lacks mandarin"
    );
    acd.enqueue(2, "general", 0, &[], t(6)).unwrap();
    assert_eq!(offered(&acd.route(t(6))), [(2, vec![1])], "mandarin 9");
    acd.enqueue(3, "general", 0, &["tibetan"], t(7)).unwrap();
    assert!(
        acd.route(t(7)).is_empty(),
        "nobody speaks it: the caller waits"
    );
}

#[test]
fn priority_goes_first_then_the_longest_waiting() {
    let t = clock();
    let mut acd = acd(Strategy::LongestIdle, 1, &t);
    acd.enqueue(1, "general", 0, &[], t(10)).unwrap();
    acd.enqueue(2, "general", 0, &[], t(11)).unwrap();
    acd.enqueue(3, "general", 5, &[], t(12)).unwrap(); // a repeat caller on the same ticket
    assert_eq!(acd.position(3, t(12)), Some((1, Duration::ZERO)));
    assert_eq!(acd.position(2, t(20)), Some((3, Duration::from_secs(9))));
    assert_eq!(offered(&acd.route(t(12))), [(3, vec![1])]);
}

#[test]
fn ring_no_answer_moves_on_and_three_misses_pause_the_agent() {
    let t = clock();
    let mut acd = acd(Strategy::LongestIdle, 2, &t);
    acd.enqueue(1, "general", 0, &[], t(10)).unwrap();
    assert_eq!(offered(&acd.route(t(10))), [(1, vec![1])]);
    assert!(acd.tick(t(29)).is_empty(), "19 s: still ringing");
    let ev = acd.tick(t(30));
    assert_eq!(
        ev,
        [Event::StopRinging {
            call: 1,
            agents: vec![1]
        }]
    );
    assert_eq!(acd.agent(1).unwrap().misses, 1);
    // The call moves on to the other agent.
    assert_eq!(offered(&acd.route(t(30))), [(1, vec![2])]);
    acd.answered(1, 2, t(31)).unwrap();
    // Agent 1 declines the next call twice (declines count too): paused with the reason.
    acd.enqueue(2, "general", 0, &[], t(40)).unwrap();
    for round in 1..=2 {
        assert_eq!(offered(&acd.route(t(40))), [(2, vec![1])]);
        let ev = acd.missed(2, 1, t(41)).unwrap();
        if round == 2 {
            assert_eq!(
                ev,
                [Event::AutoPaused {
                    agent: 1,
                    misses: 3
                }]
            );
        } else {
            assert!(ev.is_empty());
        }
    }
    assert_eq!(
        acd.agent(1).unwrap().state,
        AgentState::Paused {
            reason: "missed calls".into()
        }
    );
    assert!(acd.route(t(42)).is_empty(), "nobody left to ring");
    acd.resume(1, t(50)).unwrap();
    assert_eq!(acd.agent(1).unwrap().misses, 0);
    assert_eq!(acd.route(t(50)).len(), 1);
}

#[test]
fn a_caller_past_the_longest_wait_overflows_keeping_its_age() {
    let t = clock();
    let mut general = queue("general", Strategy::LongestIdle);
    general.max_wait = Some(Duration::from_secs(60));
    general.overflow = Some("overflow".into());
    let mut acd = Acd::new([general, queue("overflow", Strategy::LongestIdle)]);
    acd.add_agent(9, &[], t(0));
    acd.login(9, &["overflow"], t(0)).unwrap();
    acd.enqueue(1, "general", 0, &[], t(0)).unwrap();
    assert!(acd.route(t(1)).is_empty(), "no agent in general");
    assert!(acd.tick(t(59)).is_empty());
    let ev = acd.tick(t(60));
    assert_eq!(
        ev,
        [Event::Overflowed {
            call: 1,
            from: "general".into(),
            to: "overflow".into()
        }]
    );
    assert_eq!(acd.waiting_in("overflow"), 1);
    assert_eq!(acd.position(1, t(61)), Some((1, Duration::from_secs(61))));
    assert_eq!(offered(&acd.route(t(61))), [(1, vec![9])]);
}

#[test]
fn self_service_keeps_the_place_and_abandoning_stops_the_ringing() {
    let t = clock();
    let mut acd = acd(Strategy::LongestIdle, 1, &t);
    acd.enqueue(1, "general", 0, &[], t(10)).unwrap();
    acd.enqueue(2, "general", 0, &[], t(11)).unwrap();
    acd.set_paused(1, true).unwrap();
    assert_eq!(
        offered(&acd.route(t(12))),
        [(2, vec![1])],
        "the one in self-service is skipped"
    );
    assert_eq!(acd.position(1, t(12)).unwrap().0, 1, "but keeps its place");
    let ev = acd.abandoned(2, t(13)).unwrap();
    assert_eq!(
        ev,
        [Event::StopRinging {
            call: 2,
            agents: vec![1]
        }]
    );
    assert_eq!(acd.agent(1).unwrap().state, AgentState::Available);
    acd.set_paused(1, false).unwrap();
    assert_eq!(offered(&acd.route(t(14))), [(1, vec![1])]);
    assert_eq!(acd.abandoned(99, t(15)), Err(AcdError::NoCall(99)));
    assert!(
        matches!(acd.pause(1, "meal", t(15)), Err(AcdError::State { .. })),
        "ringing"
    );
}

#[test]
fn a_late_answer_after_the_ring_timeout_still_connects_and_stops_the_next_agent() {
    let t = clock();
    let mut acd = acd(Strategy::LongestIdle, 2, &t);
    acd.enqueue(1, "general", 0, &[], t(10)).unwrap();
    assert_eq!(offered(&acd.route(t(10))), [(1, vec![1])]);
    acd.tick(t(30)); // agent 1 timed out: a miss
    assert_eq!(offered(&acd.route(t(30))), [(1, vec![2])]);
    // Agent 1's phone answers anyway (its 200 crossed the CANCEL): the caller is connected to
    // agent 1, agent 2 stops ringing and is free again, and nobody is left waiting.
    let ev = acd.connected(1, 1, t(30)).unwrap();
    assert_eq!(
        ev,
        [Event::StopRinging {
            call: 1,
            agents: vec![2]
        }]
    );
    assert_eq!(acd.agent(1).unwrap().state, AgentState::OnCall { call: 1 });
    assert_eq!(acd.agent(1).unwrap().misses, 0);
    assert_eq!(acd.agent(2).unwrap().state, AgentState::Available);
    assert_eq!(acd.waiting_in("general"), 0);
    // An answer from an agent that was never rung for a call that is gone is refused.
    assert_eq!(acd.connected(1, 9, t(31)), Err(AcdError::NoAgent(9)));
}

#[test]
fn an_offer_the_hotline_could_not_place_is_retracted_without_a_miss() {
    let t = clock();
    let mut acd = acd(Strategy::LongestIdle, 1, &t);
    acd.enqueue(1, "general", 0, &[], t(10)).unwrap();
    assert_eq!(offered(&acd.route(t(10))), [(1, vec![1])]);
    acd.retract(1, 1, t(10)).unwrap();
    assert_eq!(acd.agent(1).unwrap().misses, 0);
    assert_eq!(acd.agent(1).unwrap().state, AgentState::Available);
    // The next round offers it again.
    assert_eq!(offered(&acd.route(t(11))), [(1, vec![1])]);
    assert_eq!(acd.retract(2, 1, t(11)), Err(AcdError::NoCall(2)));
}

#[test]
fn a_callback_keeps_the_place_is_offered_once_the_caller_is_gone_and_rings_from_its_answer() {
    let t = clock();
    let mut acd = acd(Strategy::LongestIdle, 1, &t);
    acd.pause(1, "meeting", t(5)).unwrap();
    acd.enqueue(1, "general", 0, &[], t(10)).unwrap();
    acd.enqueue(2, "general", 0, &[], t(20)).unwrap();
    acd.to_callback(1, "13812345678").unwrap();
    acd.resume(1, t(30)).unwrap();
    // Caller 1 still on the line saying goodbye: not offered; caller 2 is.
    assert_eq!(offered(&acd.route(t(30))), [(2, vec![1])]);
    acd.answered(2, 1, t(31)).unwrap();
    acd.call_ended(1, "general", t(40)).unwrap();
    acd.tick(t(70)); // wrap-up over
    acd.callback_ready(1).unwrap();
    let offers = acd.route(t(70));
    assert_eq!(offered(&offers), [(1, vec![1])]);
    assert_eq!(offers[0].callback.as_deref(), Some("13812345678"));
    // Dialling the caller takes 30 s: no ring timeout meanwhile.
    assert!(acd.tick(t(100)).is_empty());
    acd.ringing_now(1, t(100));
    assert!(acd.tick(t(119)).is_empty());
    assert_eq!(
        acd.tick(t(120)).len(),
        1,
        "the agent's ring times out 20 s after"
    );
    assert_eq!(acd.callback_ready(2), Err(AcdError::NoCall(2)));
}

#[test]
fn a_caller_transferred_to_one_agent_waits_for_that_agent_only() {
    let t = clock();
    let mut acd = acd(Strategy::LongestIdle, 3, &t);
    acd.pause(3, "meeting", t(5)).unwrap();
    acd.enqueue(1, "general", 100, &[], t(10)).unwrap();
    acd.direct(1, 3).unwrap();
    // Agents 1 and 2 are free and idle longer, but the caller is agent 3's.
    assert!(acd.route(t(10)).is_empty());
    acd.resume(3, t(20)).unwrap();
    assert_eq!(offered(&acd.route(t(20))), [(1, vec![3])]);
    assert_eq!(acd.direct(1, 9), Err(AcdError::NoAgent(9)));
}

#[test]
fn a_restored_callback_keeps_its_place_ahead_of_later_callers() {
    let t = clock();
    let mut acd = acd(Strategy::LongestIdle, 1, &t);
    acd.pause(1, "meal", t(0)).unwrap();
    acd.enqueue(7, "general", 0, &[], t(50)).unwrap();
    // Queued at t(20) before the restart: ahead of call 7, queued at t(50).
    acd.restore_callback(1 << 40, "general", 0, &[], "13812345678", t(20), None)
        .unwrap();
    acd.resume(1, t(60)).unwrap();
    let o = acd.route(t(60));
    assert_eq!(offered(&o), [(1 << 40, vec![1])]);
    assert_eq!(o[0].callback.as_deref(), Some("13812345678"));
    assert_eq!(
        acd.restore_callback(2, "gone", 0, &[], "1", t(0), None),
        Err(AcdError::NoQueue("gone".into()))
    );
}

#[test]
fn a_failed_callback_waits_for_its_retry_and_a_draining_node_holds_callbacks() {
    let t = clock();
    let mut acd = acd(Strategy::LongestIdle, 1, &t);
    acd.enqueue(1, "general", 0, &[], t(10)).unwrap();
    acd.to_callback(1, "13812345678").unwrap();
    acd.callback_ready(1).unwrap();
    assert_eq!(offered(&acd.route(t(11))), [(1, vec![1])]);
    // The caller did not answer: the agent is free, the place stays, not offered before t(600).
    acd.retry_callback(1, t(600), t(40)).unwrap();
    assert_eq!(acd.agent(1).unwrap().state, AgentState::Available);
    assert!(acd.route(t(599)).is_empty());
    assert_eq!(acd.waiting().count(), 1);
    assert_eq!(offered(&acd.route(t(600))), [(1, vec![1])]);
    acd.retry_callback(1, t(700), t(610)).unwrap();
    // Draining: the callback is owed, not placed; a caller on the line still is.
    acd.hold_callbacks();
    acd.enqueue(2, "general", 0, &[], t(650)).unwrap();
    assert_eq!(offered(&acd.route(t(800))), [(2, vec![1])]);
    assert_eq!(
        acd.retry_callback(2, t(900), t(800)),
        Err(AcdError::NoCall(2))
    );
}
