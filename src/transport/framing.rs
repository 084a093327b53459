//! How frames are delimited on a byte stream (stdio, QEMU's stream socket): pure encoding and
//! decoding, no I/O.
//!
//! The decoder is fed whatever the stream gave so far and takes out one frame at a time; it
//! keeps only the little state a frame split across reads or a frame being skipped needs. What
//! cannot be a frame (too long, a bad SLIP escape, an empty length-prefixed frame) is reported
//! as dropped once and skipped, after which decoding goes on with the next frame.

/// A framing of frames on a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// SLIP (RFC 1055): IP packets, each ended by END, with END and ESC escaped — what User
    /// Mode Linux's slirp transport speaks.
    Slip,
    /// A 2-byte big-endian length before each Ethernet frame (vde_plug's stream).
    Len16,
    /// A 4-byte big-endian length before each Ethernet frame (QEMU's `-netdev stream`).
    Len32,
}

const END: u8 = 0xc0;
const ESC: u8 = 0xdb;
const ESC_END: u8 = 0xdc;
const ESC_ESC: u8 = 0xdd;

impl Framing {
    /// Whether the frames are IP packets rather than Ethernet frames.
    pub fn carries_ip(self) -> bool {
        self == Framing::Slip
    }

    fn length_bytes(self) -> usize {
        match self {
            Framing::Slip => 0,
            Framing::Len16 => 2,
            Framing::Len32 => 4,
        }
    }

    /// The most bytes `frame_len` bytes of frame take on the stream.
    pub fn max_encoded_len(self, frame_len: usize) -> usize {
        match self {
            Framing::Slip => 2 * frame_len + 2,
            _ => self.length_bytes() + frame_len,
        }
    }

    /// Appends `frame`, framed, to `out`.
    pub fn encode(self, frame: &[u8], out: &mut Vec<u8>) {
        match self {
            Framing::Slip => {
                // A leading END ends whatever line noise came before (RFC 1055).
                out.push(END);
                for &byte in frame {
                    match byte {
                        END => out.extend_from_slice(&[ESC, ESC_END]),
                        ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
                        _ => out.push(byte),
                    }
                }
                out.push(END);
            }
            Framing::Len16 => {
                out.extend_from_slice(&(frame.len() as u16).to_be_bytes());
                out.extend_from_slice(frame);
            }
            Framing::Len32 => {
                out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
                out.extend_from_slice(frame);
            }
        }
    }
}

/// What one step of decoding gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A frame of this length is at the start of the output buffer.
    Frame(usize),
    /// A frame was dropped (malformed or too long); count it.
    Dropped,
    /// Bytes were used up without a frame (an empty SLIP packet, part of a skipped frame).
    Skipped,
    /// The input holds no whole frame: read more.
    NeedMore,
}

/// Takes frames out of a byte stream (see the module's documentation).
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    /// The longest frame taken; a longer one is dropped.
    max_frame: usize,
    /// Bytes of a dropped length-prefixed frame still to skip.
    skip: usize,
    /// SLIP: inside a dropped packet, skipping up to its END.
    skip_to_end: bool,
}

impl Decoder {
    /// A decoder for `framing` taking frames of up to `max_frame` bytes.
    pub fn new(framing: Framing, max_frame: usize) -> Self {
        Decoder {
            framing,
            max_frame,
            skip: 0,
            skip_to_end: false,
        }
    }

    /// Forgets a frame half read (the peer went away).
    pub fn reset(&mut self) {
        self.skip = 0;
        self.skip_to_end = false;
    }

    /// The most bytes of input one frame can take: a buffer this large always makes progress.
    pub fn max_input(&self) -> usize {
        self.framing.max_encoded_len(self.max_frame) + 1
    }

    /// Takes the next frame from `input` into `out` (at least `max_frame` bytes long); returns
    /// how many input bytes were used and what came of them.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> (usize, Decoded) {
        if input.is_empty() {
            return (0, Decoded::NeedMore);
        }
        match self.framing {
            Framing::Slip => self.decode_slip(input, out),
            _ => self.decode_length_prefixed(input, out),
        }
    }

    fn decode_slip(&mut self, input: &[u8], out: &mut [u8]) -> (usize, Decoded) {
        let Some(end) = input.iter().position(|&b| b == END) else {
            if self.skip_to_end || input.len() > self.framing.max_encoded_len(self.max_frame) {
                // Too long to be a packet, or already dropped: nothing up to the END matters.
                let was_skipping = std::mem::replace(&mut self.skip_to_end, true);
                let outcome = if was_skipping {
                    Decoded::Skipped
                } else {
                    Decoded::Dropped
                };
                return (input.len(), outcome);
            }
            return (0, Decoded::NeedMore);
        };
        let used = end + 1;
        if std::mem::take(&mut self.skip_to_end) || end == 0 {
            return (used, Decoded::Skipped);
        }
        let limit = self.max_frame.min(out.len());
        match unescape(&input[..end], &mut out[..limit]) {
            Some(len) => (used, Decoded::Frame(len)),
            None => (used, Decoded::Dropped),
        }
    }

    fn decode_length_prefixed(&mut self, input: &[u8], out: &mut [u8]) -> (usize, Decoded) {
        if self.skip > 0 {
            let used = self.skip.min(input.len());
            self.skip -= used;
            return (used, Decoded::Skipped);
        }
        let header = self.framing.length_bytes();
        if input.len() < header {
            return (0, Decoded::NeedMore);
        }
        let len = input[..header]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        if len == 0 || len > self.max_frame || len > out.len() {
            let available = input.len() - header;
            self.skip = len.saturating_sub(available);
            return (header + len.min(available), Decoded::Dropped);
        }
        if input.len() < header + len {
            return (0, Decoded::NeedMore);
        }
        out[..len].copy_from_slice(&input[header..header + len]);
        (header + len, Decoded::Frame(len))
    }
}

/// Undoes SLIP escaping; None for a bad escape or a packet longer than `out`.
fn unescape(packet: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut len = 0;
    let mut bytes = packet.iter();
    while let Some(&byte) = bytes.next() {
        let byte = match byte {
            ESC => match bytes.next() {
                Some(&ESC_END) => END,
                Some(&ESC_ESC) => ESC,
                _ => return None,
            },
            _ => byte,
        };
        *out.get_mut(len)? = byte;
        len += 1;
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes everything in `stream`, fed `chunk` bytes at a time as reads would give it.
    fn decode_all(framing: Framing, max: usize, stream: &[u8], chunk: usize) -> Vec<Decoded> {
        let mut decoder = Decoder::new(framing, max);
        let mut out = vec![0u8; 70000];
        let mut buffered = Vec::new();
        let mut results = Vec::new();
        for piece in stream.chunks(chunk) {
            buffered.extend_from_slice(piece);
            loop {
                let (used, decoded) = decoder.decode(&buffered, &mut out);
                buffered.drain(..used);
                match decoded {
                    Decoded::NeedMore => break,
                    Decoded::Skipped => {}
                    Decoded::Frame(len) => {
                        results.push(decoded);
                        assert_eq!(out[0], len as u8, "frames here start with their length");
                    }
                    Decoded::Dropped => results.push(decoded),
                }
                assert!(used > 0, "{decoded:?} without using input");
            }
        }
        results
    }

    /// A frame whose first byte is its length (so the test can tell frames apart), filled with
    /// the bytes SLIP must escape.
    fn frame(len: usize) -> Vec<u8> {
        let mut frame = vec![END; len];
        frame[0] = len as u8;
        for (i, byte) in frame.iter_mut().enumerate().skip(1) {
            *byte = [END, ESC, 0, ESC_END][i % 4];
        }
        frame
    }

    #[test]
    fn round_trip_whatever_the_split() {
        for framing in [Framing::Slip, Framing::Len16, Framing::Len32] {
            let mut stream = Vec::new();
            for len in [1, 60, 200, 77] {
                framing.encode(&frame(len), &mut stream);
            }
            for chunk in [1, 2, 3, 7, 64, 4096] {
                let got = decode_all(framing, 1514, &stream, chunk);
                let want: Vec<_> = [1, 60, 200, 77].map(Decoded::Frame).into();
                assert_eq!(got, want, "{framing:?} in chunks of {chunk}");
            }
        }
    }

    #[test]
    fn slip_bad_escapes_and_noise_drop_one_packet_each() {
        let mut stream = vec![ESC, 0x01, END]; // a bad escape
        Framing::Slip.encode(&frame(40), &mut stream);
        stream.extend_from_slice(&[7, 7, ESC, END]); // an escape cut short by END
        Framing::Slip.encode(&frame(41), &mut stream);
        stream.extend_from_slice(&[END, END, END]); // empty packets are nothing
        let got = decode_all(Framing::Slip, 1500, &stream, 5);
        use Decoded::*;
        assert_eq!(got, vec![Dropped, Frame(40), Dropped, Frame(41)]);
    }

    #[test]
    fn oversize_frames_are_skipped_and_decoding_resumes() {
        for framing in [Framing::Slip, Framing::Len16, Framing::Len32] {
            let mut stream = Vec::new();
            framing.encode(&frame(100), &mut stream);
            framing.encode(&vec![0x55; 5000], &mut stream);
            framing.encode(&frame(99), &mut stream);
            for chunk in [1, 13, 1000, 100_000] {
                let got = decode_all(framing, 1514, &stream, chunk);
                use Decoded::*;
                assert_eq!(
                    got,
                    vec![Frame(100), Dropped, Frame(99)],
                    "{framing:?}/{chunk}"
                );
            }
        }
    }

    #[test]
    fn empty_length_prefixed_frames_are_dropped() {
        let mut stream = vec![0, 0];
        Framing::Len16.encode(&frame(30), &mut stream);
        let got = decode_all(Framing::Len16, 1514, &stream, 3);
        assert_eq!(got, vec![Decoded::Dropped, Decoded::Frame(30)]);
    }

    #[test]
    fn the_decoder_never_needs_more_than_max_input() {
        let decoder = Decoder::new(Framing::Slip, 1500);
        let mut out = [0u8; 1500];
        // Noise without END, as long as max_input: consumed, not waited on.
        let noise = vec![0x41; decoder.max_input()];
        let mut decoder = decoder;
        let (used, decoded) = decoder.decode(&noise, &mut out);
        assert_eq!((used, decoded), (noise.len(), Decoded::Dropped));
    }
}
