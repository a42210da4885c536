//! Which bytes a download asks for, from its `Range` header (RFC 9110 §14). Pure, so the
//! server's blob route and the fuzz targets share one reading of the header.

use std::ops::RangeInclusive;

/// What to serve for one `Range` header against a body of known size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedRange {
    /// No usable range: serve the whole body with 200.
    Whole,
    /// Serve these bytes (both ends inclusive, `start <= end < size`) with 206.
    Part(RangeInclusive<u64>),
    /// A well-formed range that selects no byte of this body: answer 416.
    Unsatisfiable,
}

/// Reads a `Range` header value. A header we cannot parse is ignored, as HTTP allows (the
/// whole body is served); of several ranges only the first is served, because no client of
/// ours asks for more and a multipart/byteranges answer is not worth its complexity.
pub fn requested_range(header: &str, size: u64) -> RequestedRange {
    let Ok(parsed) = http_range_header::parse_range_header(header) else {
        return RequestedRange::Whole;
    };
    match parsed.validate(size) {
        // `validate` clamps the end to `size - 1` with a saturating subtraction, so on an empty
        // body it answers `0..=0`: check the bounds here rather than trust it.
        Ok(ranges) => match ranges.into_iter().next() {
            Some(range) if range.start() <= range.end() && *range.end() < size => {
                RequestedRange::Part(range)
            }
            Some(_) => RequestedRange::Unsatisfiable,
            None => RequestedRange::Whole,
        },
        Err(_) => RequestedRange::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every header, read against a 100-byte body, gives `expected`.
    fn each_gives(headers: &[&str], expected: &RequestedRange) {
        for header in headers {
            assert_eq!(&requested_range(header, 100), expected, "{header:?}");
        }
    }

    #[test]
    fn no_range_or_a_malformed_one_means_the_whole_body() {
        each_gives(
            &[
                "",
                "bytes",
                "bytes=",
                "items=0-1",
                "bytes=a-b",
                "bytes=1-2-3",
                " bytes=0-1",
            ],
            &RequestedRange::Whole,
        );
    }

    #[test]
    fn a_range_inside_the_body_is_served_as_asked() {
        each_gives(&["bytes=0-9"], &RequestedRange::Part(0..=9));
        each_gives(&["bytes=90-", "bytes=-10"], &RequestedRange::Part(90..=99));
    }

    #[test]
    fn a_range_running_past_the_end_is_cut_at_the_last_byte() {
        each_gives(&["bytes=50-1000"], &RequestedRange::Part(50..=99));
        each_gives(&["bytes=-100"], &RequestedRange::Part(0..=99));
    }

    #[test]
    fn of_several_ranges_only_the_first_is_served() {
        each_gives(&["bytes=10-19, 50-59"], &RequestedRange::Part(10..=19));
    }

    #[test]
    fn a_range_that_selects_no_byte_is_unsatisfiable() {
        each_gives(
            &[
                "bytes=100-",
                "bytes=200-300",
                "bytes=-101",
                "bytes=0-10,5-20",
                "bytes=9-3",
            ],
            &RequestedRange::Unsatisfiable,
        );
    }

    /// Found by the `range_header` fuzz target (fuzz/regressions/range_header/): the parser
    /// clamps the end to `size - 1`, which saturates to 0 for an empty body and so answered
    /// `0..=0`, a byte that does not exist.
    #[test]
    fn a_range_of_an_empty_body_is_unsatisfiable() {
        for header in ["bytes=0-", "bytes=0-0", "bytes=0-5", "bytes=-1"] {
            assert_eq!(
                requested_range(header, 0),
                RequestedRange::Unsatisfiable,
                "{header:?}"
            );
        }
        assert_eq!(requested_range("bytes=0-", 1), RequestedRange::Part(0..=0));
    }
}
