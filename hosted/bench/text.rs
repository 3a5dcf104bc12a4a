//! Deterministic pseudo-random text for `sort`, `perl` and `awk`, shared by
//! the tests and the benchmark (`#[path]`-included by both).

use std::fmt::Write as _;

/// `lines` lines, each a number below 1 000 000 and one to sixteen words.
pub fn generated_text(lines: usize) -> String {
    const WORDS: [&str; 16] = [
        "malloc", "free", "zone", "tiny", "small", "large", "page", "fault", "kernel", "mmap",
        "realloc", "calloc", "arena", "block", "heap", "thread",
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::with_capacity(lines * 48);
    for _ in 0..lines {
        let r = next();
        let _ = write!(text, "{} ", r % 1_000_000);
        for k in 0..(r >> 60) as usize + 1 {
            text.push_str(WORDS[((r >> (4 * k)) & 15) as usize]);
            text.push(' ');
        }
        text.push('\n');
    }
    text
}

/// The perl word count run by the tests and the benchmark.
pub const PERL_WORD_COUNT: &str = r#"my %n; while (<>) { $n{$_}++ for split; } print "$_ $n{$_}\n" for sort { $n{$b} <=> $n{$a} || $a cmp $b } keys %n;"#;

/// The awk program run by the tests and the benchmark: sums, and strings
/// grown by concatenation in an associative array.
pub const AWK_PROGRAM: &str = r#"{ sum += $1; for (i = 2; i <= NF; i++) seen[$i] = seen[$i] " " NR % 97 } END { print sum; for (w in seen) n++; print n, length(seen["heap"]) }"#;
