//! Sixteen octets at a time for the parser's longest loops. With SSE2 (part of every x86-64
//! CPU): the head cut, header names, quoted strings. With SSSE3's byte shuffle (x86-64-v2,
//! which `.cargo/config.toml` builds for): runs of any character class ([`class_end`]: URI
//! parts, tokens, words, quoted text), from two sixteen-entry nibble tables per class. This
//! is the parser's only unsafe code. Where the target lacks the instructions, [`first_stop`]
//! and [`class_end`] read no block and the callers' word-at-a-time and octet loops do all
//! the work.

/// Which octets stop a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Controls (HT and the line ends included), DEL, and every octet from 0x80.
    Control,
    /// [`Stop::Control`] and `"` and `\`: what may not stand for itself in a quoted string
    /// (HT and non-ASCII octets may; the caller looks at the octet it lands on).
    InQuotes,
    /// What may end a header name: [`Stop::Control`], space and `:`. (A name is checked to
    /// be a token by the caller, by recognising it or octet by octet.)
    NameEnd,
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
            __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
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
            // Signed: octets from 0x80 on are negative, so "below 0x20" takes them too.
            let below = |c: u8| _mm_cmplt_epi8(v, _mm_set1_epi8(c as i8));
            let hits = match stop {
                Stop::Control => _mm_or_si128(below(0x20), is(0x7f)),
                Stop::InQuotes => _mm_or_si128(
                    _mm_or_si128(below(0x20), is(0x7f)),
                    _mm_or_si128(is(b'"'), is(b'\\')),
                ),
                // Controls and space (so "below 0x21"), DEL and the colon.
                Stop::NameEnd => _mm_or_si128(_mm_or_si128(below(0x21), is(0x7f)), is(b':')),
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

/// Where the run of `class` octets from `i` ends, sixteen octets at a time with SSSE3's byte
/// shuffle (two nibble lookups per octet): `None` when the target lacks SSSE3 or `b` is
/// shorter than sixteen octets (the caller's octet loop decides). The last block overlaps
/// the one before rather than read past the end.
#[inline(always)]
pub(crate) fn class_end(b: &[u8], i: usize, class: &super::class::Class) -> Option<usize> {
    #[cfg(all(target_arch = "x86_64", target_feature = "ssse3"))]
    {
        use std::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
            _mm_set1_epi8, _mm_setzero_si128, _mm_shuffle_epi8, _mm_srli_epi16,
        };
        let len = b.len();
        if len < 16 {
            return None;
        }
        if i >= len {
            return Some(i);
        }
        // SAFETY: every load reads sixteen octets at `at` with `at + 16 <= len` (either
        // `i + 16 <= len`, or `at = len - 16`, which is not below zero since `len >= 16`), or
        // one of the class's two sixteen-octet tables; loads have no alignment requirement.
        // The other intrinsics only compute on registers, with SSSE3, which this code is
        // compiled for (`target_feature = "ssse3"`).
        #[allow(unsafe_code)]
        unsafe {
            let lo = _mm_loadu_si128(class.lo.as_ptr().cast::<__m128i>());
            let hi = _mm_loadu_si128(class.hi.as_ptr().cast::<__m128i>());
            let nibble = _mm_set1_epi8(0x0f);
            // Bit k set when octet `at + k` is not in the class.
            let outside = |at: usize| -> u32 {
                let v = _mm_loadu_si128(b.as_ptr().add(at).cast::<__m128i>());
                let l = _mm_shuffle_epi8(lo, _mm_and_si128(v, nibble));
                let h = _mm_shuffle_epi8(hi, _mm_and_si128(_mm_srli_epi16::<4>(v), nibble));
                let both = _mm_and_si128(l, h);
                _mm_movemask_epi8(_mm_cmpeq_epi8(both, _mm_setzero_si128())) as u32
            };
            let mut at = i;
            while at + 16 <= len {
                let m = outside(at);
                if m != 0 {
                    return Some(at + m.trailing_zeros() as usize);
                }
                at += 16;
            }
            if at == len {
                return Some(len);
            }
            let last = len - 16;
            let m = outside(last) >> (at - last);
            Some(if m != 0 {
                at + m.trailing_zeros() as usize
            } else {
                len
            })
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "ssse3")))]
    {
        let _ = (b, i, class);
        None
    }
}
