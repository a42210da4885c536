//! Durations and sizes as people read and write them: `30d`, `1d 12h`, `10 GiB`. The wire
//! carries whole seconds and bytes; everything the CLI prints goes through here, including
//! the limits quoted in the server's error messages.

use bytesize::ByteSize;

const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];

/// `seconds` in at most two units, rounded to the nearer of the smaller one: `2d`, `1d 12h`,
/// `5m 30s`, `0s`. Rounding (not truncating) keeps a window that has just begun reading as
/// what was asked for: 2 days less one second is still `2d`.
pub fn human_duration(seconds: u64) -> String {
    let mut value = seconds;
    // Rounding can carry into the next larger unit (86,399 s rounds to 24h): then the value
    // is looked at again in that unit. Each pass moves up a unit, so this ends.
    let (big, small) = loop {
        let index = UNITS
            .iter()
            .position(|(unit, _)| value >= *unit)
            .unwrap_or(UNITS.len() - 1);
        let step = UNITS.get(index + 1).map_or(1, |(unit, _)| *unit);
        let rounded = value.saturating_add(step / 2) / step * step;
        let index_after = UNITS
            .iter()
            .position(|(unit, _)| rounded >= *unit)
            .unwrap_or(UNITS.len() - 1);
        if index_after == index {
            break (index, rounded);
        }
        value = rounded;
    };
    let (unit, name) = UNITS[big];
    let whole = small / unit;
    let rest = small % unit;
    match UNITS.get(big + 1) {
        Some((next, next_name)) if rest > 0 => format!("{whole}{name} {}{next_name}", rest / next),
        _ => format!("{whole}{name}"),
    }
}

/// A size in binary units, without a decimal when it is a whole number of them (`10 GiB`,
/// `512 B`, `1.5 MiB`).
pub fn human_size(bytes: u64) -> String {
    const BINARY: [(u64, &str); 6] = [
        (1 << 50, "PiB"),
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
        (1, "B"),
    ];
    match BINARY
        .iter()
        .find(|(unit, _)| bytes >= *unit && bytes.is_multiple_of(*unit))
    {
        Some((unit, name)) if bytes / unit < 1024 || *unit == 1 << 50 => {
            format!("{} {name}", bytes / unit)
        }
        _ => ByteSize(bytes).to_string(),
    }
}

/// The server's refusals quote limits in the wire's units ("at most 2592000 seconds", "the
/// allowed size of 10737418240 bytes"); this rewrites those numbers the way the CLI takes
/// them. Small byte counts (name lengths, "255 bytes") are left alone.
pub fn humanize_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let (before, from_digits) = rest.split_at(start);
        out.push_str(before);
        let digits_len = from_digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(from_digits.len());
        let (digits, after) = from_digits.split_at(digits_len);
        // A number glued to a word or another number ("v2", "1.5") is not a quantity.
        let standalone = !before.ends_with(|c: char| c.is_alphanumeric() || c == '.');
        let number = digits.parse::<u64>().ok().filter(|_| standalone);
        let replaced = number.and_then(|number| {
            if let Some(tail) = after.strip_prefix(" seconds") {
                Some((human_duration(number), tail))
            } else if let Some(tail) = after.strip_prefix(" bytes") {
                (number >= 1024).then(|| (human_size(number), tail))
            } else {
                None
            }
        });
        match replaced {
            Some((text, tail)) => {
                out.push_str(&text);
                rest = tail;
            }
            None => {
                out.push_str(digits);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Clap's parser for `--max-size`: a size with a unit. A bare number is refused, since
/// `--max-size 100` silently meaning 100 bytes is never what anybody wants.
pub fn parse_size(text: &str) -> Result<ByteSize, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let bytes = if trimmed.contains('.') {
            String::new()
        } else {
            format!(" (or {trimmed}B for bytes)")
        };
        return Err(format!(
            "{trimmed} what? write {trimmed}MB or {trimmed}MiB{bytes}"
        ));
    }
    trimmed.parse::<ByteSize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_to_the_nearer_smaller_unit() {
        for (seconds, expected) in [
            (0, "0s"),
            (45, "45s"),
            (90, "1m 30s"),
            (3_599, "59m 59s"),
            (7_199, "2h"),
            (86_399, "1d"),
            (2 * 86_400 - 1, "2d"),
            (36 * 3_600, "1d 12h"),
            (36 * 3_600 - 1, "1d 12h"),
            (2_592_000, "30d"),
            (600, "10m"),
        ] {
            assert_eq!(human_duration(seconds), expected, "{seconds}");
        }
    }

    #[test]
    fn sizes_are_whole_binary_units_when_they_can_be() {
        for (bytes, expected) in [
            (10_737_418_240, "10 GiB"),
            (1024, "1 KiB"),
            (512, "512 B"),
            (1_572_864, "1.5 MiB"),
            (1_000_000, "976.6 KiB"),
        ] {
            assert_eq!(human_size(bytes), expected, "{bytes}");
        }
    }

    #[test]
    fn server_limits_in_messages_are_rewritten_in_human_units() {
        assert_eq!(
            humanize_message("invalid expiry: expires_in must be at most 2592000 seconds"),
            "invalid expiry: expires_in must be at most 30d"
        );
        assert_eq!(
            humanize_message("the upload exceeds the allowed size of 10737418240 bytes"),
            "the upload exceeds the allowed size of 10 GiB"
        );
        for unchanged in [
            "the name is longer than 255 bytes",
            "expires_in must be at least 1 second",
            "v2 of 3 parts",
            "1.5 seconds",
            "",
        ] {
            assert_eq!(humanize_message(unchanged), unchanged);
        }
    }

    #[test]
    fn a_size_without_a_unit_is_refused_with_a_hint() {
        let error = parse_size("100").unwrap_err();
        assert!(
            error.starts_with("100 what? write 100MB or 100MiB"),
            "{error}"
        );
        assert_eq!(parse_size("100MB").unwrap().as_u64(), 100_000_000);
        assert_eq!(parse_size("2GiB").unwrap().as_u64(), 2 << 30);
        assert_eq!(parse_size("100B").unwrap().as_u64(), 100);
        assert!(parse_size("lots").is_err());
        assert_eq!(
            parse_size("1.5").unwrap_err(),
            "1.5 what? write 1.5MB or 1.5MiB"
        );
    }
}
