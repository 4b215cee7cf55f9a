//! The character classes of the RFC 3261 ABNF (section 25) as octet tables: what `scan`
//! reads runs of, and what `simd` classifies sixteen octets at a time. Neither imports the
//! other; both import this.

/// The marks of `unreserved` (RFC 3261 25.1), besides alphanumerics.
pub(crate) const MARKS: &[u8] = b"-_.!~*'()";

/// A class of octets: a membership table, and the same set as two sixteen-entry tables
/// indexed by an octet's low and high nibble (an octet is a member when its entries share a
/// bit), which lets `scan::run_of` classify sixteen octets at a time (`simd::class_end`).
pub(crate) struct Class {
    member: [bool; 256],
    pub(crate) lo: [u8; 16],
    pub(crate) hi: [u8; 16],
}

impl Class {
    /// The class of the octets `member` holds. Each high nibble's set of low nibbles gets a
    /// bit; a class has at most eight different such sets (checked when it is built).
    pub(crate) const fn of(member: [bool; 256]) -> Class {
        let mut patterns = [0u16; 8];
        let mut count = 0;
        let (mut lo, mut hi) = ([0u8; 16], [0u8; 16]);
        let mut h = 0;
        while h < 16 {
            let mut pattern = 0u16;
            let mut l = 0;
            while l < 16 {
                if member[h * 16 + l] {
                    pattern |= 1 << l;
                }
                l += 1;
            }
            if pattern != 0 {
                let mut k = 0;
                while k < count && patterns[k] != pattern {
                    k += 1;
                }
                if k == count {
                    assert!(count < 8, "a class with more than eight nibble patterns");
                    patterns[count] = pattern;
                    count += 1;
                }
                hi[h] = 1 << k;
                let mut l = 0;
                while l < 16 {
                    if pattern & (1 << l) != 0 {
                        lo[l] |= 1 << k;
                    }
                    l += 1;
                }
            }
            h += 1;
        }
        Class { member, lo, hi }
    }
}

#[cfg(test)]
impl Class {
    /// Whether the nibble tables hold exactly the members, octet by octet.
    pub(crate) fn nibbles_agree(&self) -> bool {
        (0..=255u8).all(|c| {
            let by_nibbles = self.lo[(c & 15) as usize] & self.hi[(c >> 4) as usize] != 0;
            by_nibbles == self.member[c as usize]
        })
    }
}

impl std::ops::Index<usize> for Class {
    type Output = bool;
    #[inline]
    fn index(&self, octet: usize) -> &bool {
        &self.member[octet]
    }
}

/// Builds a class: alphanumerics plus every byte of `sets`.
pub(crate) const fn table(sets: &[&[u8]]) -> Class {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let mut s = 0;
    while s < sets.len() {
        let mut i = 0;
        while i < sets[s].len() {
            t[sets[s][i] as usize] = true;
            i += 1;
        }
        s += 1;
    }
    Class::of(t)
}

pub(crate) static TOKEN: Class = table(&[b"-.!%*_+`'~"]);
/// `word` characters (Call-ID): token characters plus `()<>:\"/[]?{}`.
pub(crate) static WORD: Class = table(&[b"-.!%*_+`'~()<>:\\\"/[]?{}"]);

/// Octets that stand for themselves inside a quoted string: all but `"`, `\`, and control
/// octets other than HT (UTF-8 sequences included).
pub(crate) static QDTEXT: Class = Class::of({
    let mut t = [true; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = c == b'\t' as usize;
        c += 1;
    }
    t[0x7f] = false;
    t[b'"' as usize] = false;
    t[b'\\' as usize] = false;
    t
});
