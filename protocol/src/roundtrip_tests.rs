//! Every message type survives encode → frame → decode unchanged, however
//! the bytes are split on arrival.

use proptest::prelude::*;

use crate::frame::{self, DEFAULT_MAX_FRAME, FrameDecoder};
use crate::message::*;

fn roundtrip<T: WireMessage + PartialEq + std::fmt::Debug>(msg: &T) {
    let bytes = frame::encode(msg, DEFAULT_MAX_FRAME).expect("encode");
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
    decoder.push(&bytes);
    let back: T = decoder
        .next_message()
        .expect("decode")
        .expect("a whole frame");
    assert_eq!(&back, msg);
    assert_eq!(decoder.buffered(), 0);
    decoder.finish().expect("nothing left over");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn hello(m in any::<Hello>()) { roundtrip(&AgentMessage::Hello(m)) }
    #[test]
    fn capture(m in any::<Capture>()) { roundtrip(&AgentMessage::Capture(m)) }
    #[test]
    fn site_visits(m in any::<SiteVisits>()) { roundtrip(&AgentMessage::SiteVisits(m)) }
    #[test]
    fn aup_decision(m in any::<AupDecision>()) { roundtrip(&AgentMessage::AupDecision(m)) }
    #[test]
    fn heartbeat(m in any::<Heartbeat>()) { roundtrip(&AgentMessage::Heartbeat(m)) }
    #[test]
    fn concern(m in any::<Concern>()) { roundtrip(&AgentMessage::Concern(m)) }
    #[test]
    fn tamper_event(m in any::<TamperEvent>()) { roundtrip(&AgentMessage::TamperEvent(m)) }
    #[test]
    fn device_health(m in health_v6()) { roundtrip(&AgentMessage::Health(m)) }
    #[test]
    fn device_health_v7(m in any::<DeviceHealth>()) { roundtrip(&AgentMessage::HealthV7(m)) }
    #[test]
    fn health_sent_to_an_older_console_is_the_shape_it_reads(m in any::<DeviceHealth>()) {
        let bytes = postcard::to_stdvec(&AgentMessage::health_for(6, m.clone())).unwrap();
        let old: crate::health_v6::DeviceHealth = match postcard::from_bytes::<AgentMessage>(&bytes).unwrap() {
            AgentMessage::Health(h) => (&h).into(),
            other => panic!("{other:?}"),
        };
        prop_assert_eq!(old, crate::health_v6::DeviceHealth::from(&m));
        let bytes = postcard::to_stdvec(&AgentMessage::health_for(7, m.clone())).unwrap();
        prop_assert_eq!(postcard::from_bytes::<AgentMessage>(&bytes).unwrap(), AgentMessage::HealthV7(m));
    }
    #[test]
    fn welcome(m in any::<Welcome>()) { roundtrip(&ConsoleMessage::Welcome(m)) }
    #[test]
    fn refuse(m in any::<Refusal>()) { roundtrip(&ConsoleMessage::Refuse(m)) }
    #[test]
    fn ack(ids in proptest::collection::vec(crate::arbitrary::uuid(), 0..50)) {
        roundtrip(&ConsoleMessage::Ack(ids))
    }
    #[test]
    fn policy(m in policy_v6()) { roundtrip(&ConsoleMessage::Policy(m)) }
    #[test]
    fn policy_v7(m in any::<Policy>()) { roundtrip(&ConsoleMessage::PolicyV7(m)) }
    #[test]
    fn a_policy_sent_to_an_older_agent_is_the_shape_it_reads(m in any::<Policy>()) {
        // What a protocol 6 agent decodes is what the console sent, less
        // the semantic switch; and an agent reads it back with the switch on.
        let bytes = postcard::to_stdvec(&ConsoleMessage::policy_for(6, m.clone())).unwrap();
        let back: ConsoleMessage = postcard::from_bytes(&bytes).unwrap();
        let ConsoleMessage::Policy(back) = back else { panic!("not a Policy") };
        prop_assert_eq!(&crate::policy_v6::Policy::from(&back), &crate::policy_v6::Policy::from(&m));
        prop_assert!(back.semantic);
        let bytes = postcard::to_stdvec(&ConsoleMessage::policy_for(7, m.clone())).unwrap();
        prop_assert_eq!(postcard::from_bytes::<ConsoleMessage>(&bytes).unwrap(), ConsoleMessage::PolicyV7(m));
    }
    #[test]
    fn layers(m in group_layers_v5()) { roundtrip(&ConsoleMessage::Layers(m)) }
    #[test]
    fn layers_v6(m in group_layers()) { roundtrip(&ConsoleMessage::LayersV6(m)) }
    #[test]
    fn layers_v5_and_v6_agree_on_all_but_term_time(m in group_layers()) {
        let v5 = crate::layers::wire5::GroupLayers::from(&m);
        let back = crate::layers::GroupLayers::from(v5.clone());
        prop_assert_eq!(back.terms.len(), 0);
        prop_assert_eq!(back.layers.len(), m.layers.len());
        prop_assert_eq!(&back.accounts, &m.accounts);
        for (a, b) in back.layers.iter().zip(&m.layers) {
            prop_assert_eq!(&a.overrides.categories, &b.overrides.categories);
            prop_assert_eq!(
                a.overrides.hours.as_ref().map(|h| (h.days, h.start_minute, h.end_minute)),
                b.overrides.hours.as_ref().map(|h| (h.days, h.start_minute, h.end_minute))
            );
        }
        // The protocol 5 shape reads back unchanged.
        let bytes = postcard::to_stdvec(&v5).unwrap();
        prop_assert_eq!(postcard::from_bytes::<crate::layers::wire5::GroupLayers>(&bytes).unwrap(), v5);
    }
    #[test]
    fn revoke(reason in ".*") { roundtrip(&ConsoleMessage::Revoke { reason }) }
    #[test]
    fn reject(m in proptest::collection::vec(any::<Rejected>(), 0..10)) {
        roundtrip(&ConsoleMessage::Reject(m))
    }
    #[test]
    fn enroll_request(m in any::<EnrollRequest>()) { roundtrip(&m) }
    #[test]
    fn enroll_response(m in any::<EnrollResponse>()) { roundtrip(&m) }

    /// A stream of messages cut at arbitrary points decodes to the same
    /// messages in order.
    #[test]
    fn split_stream(
        msgs in proptest::collection::vec(any::<AgentMessage>(), 1..8),
        cuts in proptest::collection::vec(1usize..64, 1..64),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend(frame::encode(m, DEFAULT_MAX_FRAME).unwrap());
        }
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut out = Vec::new();
        let mut rest = &stream[..];
        for cut in cuts.iter().cycle() {
            if rest.is_empty() { break; }
            let (now, later) = rest.split_at((*cut).min(rest.len()));
            decoder.push(now);
            rest = later;
            while let Some(m) = decoder.next_message::<AgentMessage>().unwrap() {
                out.push(m);
            }
        }
        prop_assert_eq!(out, msgs);
        decoder.finish().unwrap();
    }

    /// Random bytes never panic the decoder; they give messages or an error.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&bytes);
        while let Ok(Some(_)) = decoder.next_message::<AgentMessage>() {}
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&bytes);
        while let Ok(Some(_)) = decoder.next_message::<ConsoleMessage>() {}
    }
}

/// Group layers of a few groups and accounts, with every setting.
pub(crate) fn group_layers() -> impl Strategy<Value = crate::layers::GroupLayers> {
    use crate::layers::{GroupLayers, Layer, MonitoringHours, OutsideHours, Overrides};
    use proptest::collection::vec;
    let overrides = (
        proptest::option::of(any::<u8>()),
        vec((".{0,8}", any::<bool>()), 0..3),
        vec((".{0,8}", any::<i8>()), 0..3),
        vec((any::<Source>(), any::<bool>()), 0..3),
        proptest::option::of(any::<bool>()),
        vec(".{0,12}", 0..3),
        proptest::option::of((
            any::<[bool; 7]>(),
            any::<u16>(),
            any::<u16>(),
            any::<bool>(),
        )),
        any::<bool>(),
    )
        .prop_map(
            |(min, cats, shift, sources, shots, sites, hours, gravest)| Overrides {
                min_severity: min,
                categories: cats,
                severity_shift: shift,
                sources,
                screenshots: shots,
                page_reading_excluded: sites,
                hours: hours.map(
                    |(days, start_minute, end_minute, term_time)| MonitoringHours {
                        days,
                        start_minute,
                        end_minute,
                        term_time,
                    },
                ),
                outside_hours: if gravest {
                    OutsideHours::GravestOnly
                } else {
                    OutsideHours::Nothing
                },
            },
        );
    (
        any::<u64>(),
        vec((".{0,12}", overrides), 0..4),
        vec((".{0,12}", vec(".{0,12}", 0..3)), 0..4),
        vec(".{0,12}", 0..3),
        vec((any::<i32>(), any::<i32>()), 0..3),
        vec((".{0,12}", any::<u32>(), ".{0,40}"), 0..3),
    )
        .prop_map(
            |(version, layers, accounts, device_groups, terms, aups)| GroupLayers {
                version,
                layers: layers
                    .into_iter()
                    .map(|(group, overrides)| Layer { group, overrides })
                    .collect(),
                accounts,
                device_groups,
                terms: terms
                    .into_iter()
                    .map(|(first, last)| crate::layers::Term { first, last })
                    .collect(),
                aups: aups
                    .into_iter()
                    .map(|(group, version, markdown)| crate::layers::GroupAup {
                        group,
                        version,
                        markdown,
                    })
                    .collect(),
            },
        )
}

/// The layers as protocol 5 sends them.
pub(crate) fn group_layers_v5() -> impl Strategy<Value = crate::layers::wire5::GroupLayers> {
    group_layers().prop_map(|l| crate::layers::wire5::GroupLayers::from(&l))
}

/// Policies as the protocol 6 shape carries them: the semantic switch on,
/// as an agent reads every such policy.
pub(crate) fn policy_v6() -> impl Strategy<Value = Policy> {
    any::<Policy>().prop_map(|mut p| {
        p.semantic = true;
        p
    })
}

/// Health as the protocol 6 shape carries it: no semantic state.
pub(crate) fn health_v6() -> impl Strategy<Value = crate::DeviceHealth> {
    any::<crate::DeviceHealth>().prop_map(|mut h| {
        h.semantic.clear();
        h
    })
}
