//! Arbitrary bytes on a stream transport (SLIP, 2- and 4-byte lengths), arriving in arbitrary
//! pieces: the decoder must never panic, never stall with input left, and never hand out a
//! frame longer than its limit.
//!
//! Input: one byte choosing the framing and the piece size, then the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slirp_ns::fuzzing::{Decoded, Decoder, Framing};

const MAX_FRAME: usize = 1518;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, stream)) = data.split_first() else {
        return;
    };
    let framing = [Framing::Slip, Framing::Len16, Framing::Len32][usize::from(choice % 3)];
    let piece = usize::from(choice / 3) + 1;
    let mut decoder = Decoder::new(framing, MAX_FRAME);
    let mut out = vec![0u8; MAX_FRAME];
    let mut buffered: Vec<u8> = Vec::new();
    for chunk in stream.chunks(piece) {
        buffered.extend_from_slice(chunk);
        loop {
            let (used, decoded) = decoder.decode(&buffered, &mut out);
            assert!(used <= buffered.len());
            buffered.drain(..used);
            match decoded {
                Decoded::NeedMore => {
                    assert_eq!(used, 0);
                    assert!(buffered.len() <= decoder.max_input(), "stalled on a full buffer");
                    break;
                }
                Decoded::Frame(len) => assert!(len > 0 && len <= MAX_FRAME),
                Decoded::Dropped | Decoded::Skipped => assert!(used > 0),
            }
        }
    }
});
