//! Arbitrary bytes, split at arbitrary points, into the frame decoder for
//! every message type: it must return messages or errors, never panic, and
//! never buffer more than one frame's worth.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::frame::{FrameDecoder, HEADER_LEN};
use protocol::{AgentMessage, ConsoleMessage, EnrollRequest, EnrollResponse, WireMessage};

const MAX: u32 = 64 * 1024;

fn drain<T: WireMessage>(data: &[u8], step: usize) {
    let mut decoder = FrameDecoder::new(MAX);
    for chunk in data.chunks(step.max(1)) {
        decoder.push(chunk);
        loop {
            match decoder.next_message::<T>() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(decoder.buffered() <= MAX as usize + HEADER_LEN + step);
    }
    let _ = decoder.finish();
}

fuzz_target!(|data: &[u8]| {
    let step = data.first().map_or(1, |b| usize::from(*b) + 1);
    drain::<AgentMessage>(data, step);
    drain::<ConsoleMessage>(data, step);
    drain::<EnrollRequest>(data, step);
    drain::<EnrollResponse>(data, step);
});
