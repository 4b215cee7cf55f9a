//! Sixteen octets at a time with SSE2 (part of every x86-64 CPU) for the parser's longest
//! loops: the head cut, quoted strings and header names. This is the parser's only unsafe
//! code. On other targets [`first_stop`] reads no block and the callers' word-at-a-time and
//! octet loops do all the work.

/// Which octets stop a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Controls (HT and the line ends included), DEL, and every octet from 0x80.
    Control,
    /// [`Stop::Control`] and `"` and `\`: what may not stand for itself in a quoted string
    /// (HT and non-ASCII octets may; the caller looks at the octet it lands on).
    InQuotes,
    /// Whatever is not a `token` character (alphanumerics and `-.!%*_+`'~`).
    NotToken,
}

/// From `i`, sixteen octets at a time while that many remain: `Ok` with the first octet
/// `stop` takes, or `Err` with where the whole blocks ended (the caller scans the rest).
#[inline(always)]
pub(crate) fn first_stop(b: &[u8], mut i: usize, stop: Stop) -> Result<usize, usize> {
    while let Some(mask) = block_mask(b, i, stop) {
        if mask != 0 {
            return Ok(i + mask.trailing_zeros() as usize);
        }
        i += 16;
    }
    Err(i)
}

/// The octets from `i` that `stop` takes, bit `k` for `b[i + k]`, when sixteen remain (and
/// the target has SSE2); `None` otherwise.
#[inline(always)]
pub(crate) fn block_mask(b: &[u8], i: usize, stop: Stop) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8,
            _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        if i.checked_add(16).is_none_or(|end| end > b.len()) {
            return None;
        }
        // SAFETY: `i + 16 <= b.len()`, so the sixteen octets read are inside `b` (the load
        // has no alignment requirement); the other intrinsics only compute on registers, with
        // SSE2, which every x86-64 CPU has.
        #[allow(unsafe_code)]
        let mask = unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(i).cast::<__m128i>());
            let is = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            let within = |lo: u8, hi: u8| {
                _mm_and_si128(
                    _mm_cmpgt_epi8(v, _mm_set1_epi8(lo as i8 - 1)),
                    _mm_cmplt_epi8(v, _mm_set1_epi8(hi as i8 + 1)),
                )
            };
            // Signed: octets from 0x80 on are negative, so "below 0x20" takes them too.
            let below = |c: u8| _mm_cmplt_epi8(v, _mm_set1_epi8(c as i8));
            let hits = match stop {
                Stop::Control => _mm_or_si128(below(0x20), is(0x7f)),
                Stop::InQuotes => _mm_or_si128(
                    _mm_or_si128(below(0x20), is(0x7f)),
                    _mm_or_si128(is(b'"'), is(b'\\')),
                ),
                // Besides controls, space (so "below 0x21") and DEL, the separators
                // "#$ & () , / :;<=>?@ [\]^ {|}.
                Stop::NotToken => _mm_or_si128(
                    _mm_or_si128(
                        _mm_or_si128(below(0x21), is(0x7f)),
                        _mm_or_si128(is(b'&'), _mm_or_si128(is(b','), is(b'/'))),
                    ),
                    _mm_or_si128(
                        _mm_or_si128(within(b'"', b'$'), within(b'(', b')')),
                        _mm_or_si128(
                            within(b':', b'@'),
                            _mm_or_si128(within(b'[', b'^'), within(b'{', b'}')),
                        ),
                    ),
                ),
            };
            _mm_movemask_epi8(hits) as u32
        };
        Some(mask)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (b, i, stop);
        None
    }
}
