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
    fn device_health(m in any::<DeviceHealth>()) { roundtrip(&AgentMessage::Health(m)) }
    #[test]
    fn welcome(m in any::<Welcome>()) { roundtrip(&ConsoleMessage::Welcome(m)) }
    #[test]
    fn refuse(m in any::<Refusal>()) { roundtrip(&ConsoleMessage::Refuse(m)) }
    #[test]
    fn ack(ids in proptest::collection::vec(crate::arbitrary::uuid(), 0..50)) {
        roundtrip(&ConsoleMessage::Ack(ids))
    }
    #[test]
    fn policy(m in any::<Policy>()) { roundtrip(&ConsoleMessage::Policy(m)) }
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
