//! Redis glob matching, byte for byte what Redis 7 does for PSUBSCRIBE.
//!
//! A port of `stringmatchlen()` from Redis 7.0 `util.c` (case-sensitive), including its quirks:
//! an unterminated `[` class, a trailing `\`, reversed ranges `[z-a]`, and the signed `char`
//! comparison of bytes >= 0x80 in ranges on x86. Checked against Redis itself by
//! `tests/glob.rs` (captured vectors plus a differential test against the live server).

/// Whether `pattern` has glob syntax, i.e. whether it needs PSUBSCRIBE rather than SUBSCRIBE.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.bytes().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// Does `channel` match the Redis glob `pattern`?
pub fn matches_pattern(pattern: &str, channel: &str) -> bool {
    matches_bytes(pattern.as_bytes(), channel.as_bytes())
}

/// Byte version of [`matches_pattern`], for channels that are not UTF-8.
pub fn matches_bytes(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, string, &mut skip_longer)
}

/// C `char` on x86 is signed: Redis compares range bounds as signed values.
#[inline]
fn sc(b: u8) -> i32 {
    b as i8 as i32
}

fn match_impl(pat: &[u8], s: &[u8], skip_longer: &mut bool) -> bool {
    // Indexes into the C strings; reading past the end yields the NUL terminator (0).
    let pget = |i: usize| -> u8 { pat.get(i).copied().unwrap_or(0) };
    let sget = |i: usize| -> u8 { s.get(i).copied().unwrap_or(0) };
    let mut p = 0usize;
    let mut plen = pat.len() as isize;
    let mut si = 0usize;
    let mut slen = s.len() as isize;

    while plen > 0 && slen > 0 {
        match pget(p) {
            b'*' => {
                while plen > 0 && pget(p + 1) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                if plen == 1 {
                    return true;
                }
                while slen > 0 {
                    if match_impl(&pat[p + 1..], &s[si..], skip_longer) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                    slen -= 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                si += 1;
                slen -= 1;
            }
            b'[' => {
                p += 1;
                plen -= 1;
                let not = pget(p) == b'^';
                if not {
                    p += 1;
                    plen -= 1;
                }
                let mut matched = false;
                loop {
                    if pget(p) == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                        if pget(p) == sget(si) {
                            matched = true;
                        }
                    } else if pget(p) == b']' {
                        break;
                    } else if plen == 0 {
                        p -= 1;
                        plen += 1;
                        break;
                    } else if plen >= 3 && pget(p + 1) == b'-' {
                        let mut start = sc(pget(p));
                        let mut end = sc(pget(p + 2));
                        let c = sc(sget(si));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p += 2;
                        plen -= 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if pget(p) == sget(si) {
                        matched = true;
                    }
                    p += 1;
                    plen -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
            c => {
                let mut c = c;
                if c == b'\\' && plen >= 2 {
                    p += 1;
                    plen -= 1;
                    c = pget(p);
                }
                if c != sget(si) {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
        }
        p += 1;
        plen -= 1;
        if slen == 0 {
            while pget(p) == b'*' && plen > 0 {
                p += 1;
                plen -= 1;
            }
            break;
        }
    }
    plen == 0 && slen == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        assert!(matches_pattern("photo.*", "photo.processing.started"));
        assert!(!matches_pattern("photo.*", "photo"));
        assert!(!matches_pattern("*", "")); // Redis: the loop never runs on an empty string
        assert!(matches_pattern("h?llo", "hello"));
        assert!(matches_pattern("h[ae]llo", "hallo"));
        assert!(!matches_pattern("h[^e]llo", "hello"));
        assert!(matches_pattern("h[a-b]llo", "hbllo"));
        assert!(matches_pattern("a\\*b", "a*b"));
        assert!(!matches_pattern("a\\*b", "axb"));
        assert!(is_pattern("a[b"));
        assert!(!is_pattern("photo.uploaded"));
    }
}
