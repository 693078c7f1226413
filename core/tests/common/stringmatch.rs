//! The reference glob matcher: a line-by-line port of `stringmatchlen_impl()` from Redis 7.0
//! `src/util.c` with `nocase = 0`, written independently of `event_bus::glob` so the two can
//! be compared (by `tests/prop_glob.rs` and by the `glob_diff` fuzz target, which includes
//! this file with `#[path]`).
//!
//! It keeps the C shape on purpose: `pattern` and `string` are walked with an index and a
//! signed remaining length, and reading at the end yields the NUL terminator that a Redis sds
//! string always has. `char` is signed on x86, so range bounds compare as signed values.
//! Redis 7.0 has no recursion-depth limit (later releases return "no match" past 1000 nested
//! `*`), and neither does this port.

/// Does `string` match the Redis glob `pattern` (case-sensitive)?
pub fn stringmatchlen(pattern: &[u8], string: &[u8]) -> bool {
    // C strings: the bytes plus the NUL terminator.
    let mut p = pattern.to_vec();
    p.push(0);
    let mut s = string.to_vec();
    s.push(0);
    let mut skip_longer_matches = 0;
    impl_(
        &p,
        0,
        pattern.len() as i64,
        &s,
        0,
        string.len() as i64,
        &mut skip_longer_matches,
    ) == 1
}

/// `(int)(char)b` on a signed-char platform.
fn ch(b: u8) -> i32 {
    b as i8 as i32
}

#[allow(clippy::too_many_arguments)]
fn impl_(
    pat: &[u8],
    mut pattern: usize,
    mut pattern_len: i64,
    st: &[u8],
    mut string: usize,
    mut string_len: i64,
    skip_longer_matches: &mut i32,
) -> i32 {
    while pattern_len != 0 && string_len != 0 {
        match pat[pattern] {
            b'*' => {
                while pattern_len != 0 && pat[pattern + 1] == b'*' {
                    pattern += 1;
                    pattern_len -= 1;
                }
                if pattern_len == 1 {
                    return 1; // match
                }
                while string_len != 0 {
                    if impl_(
                        pat,
                        pattern + 1,
                        pattern_len - 1,
                        st,
                        string,
                        string_len,
                        skip_longer_matches,
                    ) == 1
                    {
                        return 1; // match
                    }
                    if *skip_longer_matches != 0 {
                        return 0; // no match
                    }
                    string += 1;
                    string_len -= 1;
                }
                // There was no match for the rest of the pattern starting from anywhere in
                // the rest of the string: no longer match can succeed either.
                *skip_longer_matches = 1;
                return 0; // no match
            }
            b'?' => {
                string += 1;
                string_len -= 1;
            }
            b'[' => {
                pattern += 1;
                pattern_len -= 1;
                let not = pat[pattern] == b'^';
                if not {
                    pattern += 1;
                    pattern_len -= 1;
                }
                let mut matched = false;
                loop {
                    if pat[pattern] == b'\\' && pattern_len >= 2 {
                        pattern += 1;
                        pattern_len -= 1;
                        if pat[pattern] == st[string] {
                            matched = true;
                        }
                    } else if pat[pattern] == b']' {
                        break;
                    } else if pattern_len == 0 {
                        pattern -= 1;
                        pattern_len += 1;
                        break;
                    } else if pattern_len >= 3 && pat[pattern + 1] == b'-' {
                        let mut start = ch(pat[pattern]);
                        let mut end = ch(pat[pattern + 2]);
                        let c = ch(st[string]);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        pattern += 2;
                        pattern_len -= 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if pat[pattern] == st[string] {
                        matched = true;
                    }
                    pattern += 1;
                    pattern_len -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return 0; // no match
                }
                string += 1;
                string_len -= 1;
            }
            other => {
                // case '\\': (falls through to default)
                if other == b'\\' && pattern_len >= 2 {
                    pattern += 1;
                    pattern_len -= 1;
                }
                // default:
                if pat[pattern] != st[string] {
                    return 0; // no match
                }
                string += 1;
                string_len -= 1;
            }
        }
        pattern += 1;
        pattern_len -= 1;
        if string_len == 0 {
            while pat[pattern] == b'*' {
                pattern += 1;
                pattern_len -= 1;
            }
            break;
        }
    }
    i32::from(pattern_len == 0 && string_len == 0)
}
