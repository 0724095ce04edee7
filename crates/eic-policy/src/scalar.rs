//! Typed condition values: numbers, dates and IP ranges.
//!
//! The same parsers read policy values (where a failure is a parse error)
//! and request values (where a failure means "does not match").

use std::net::IpAddr;

/// A decimal number: optional sign, digits, optional fraction.
///
/// Exponents, `inf` and `NaN`, which Rust's float parser would accept, are
/// rejected because IAM documents only integers and decimals.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match unsigned.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (unsigned, None),
    };
    let all_digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !frac.is_none_or(all_digits) {
        return None;
    }
    s.parse().ok()
}

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// A point in time as nanoseconds since the Unix epoch.
///
/// Accepts epoch seconds (`1563278400`, optionally with a fraction) and the
/// W3C profile of ISO 8601 (`2019-07-16`, `2019-07-16T12:00Z`,
/// `2019-07-16T12:00:00.5+02:00`, …) plus the basic form AWS uses in
/// signatures (`20190716T120000Z`). A time without a zone is taken as UTC.
pub(crate) fn parse_date(s: &str) -> Option<i128> {
    parse_epoch(s).or_else(|| parse_iso8601(s))
}

fn parse_epoch(s: &str) -> Option<i128> {
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = match unsigned.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (unsigned, ""),
    };
    // Sixteen digits of seconds reach far beyond year 9999 yet cannot
    // overflow the nanosecond count.
    if int.is_empty() || int.len() > 16 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if unsigned.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let secs: i128 = int.parse().ok()?;
    let nanos = fraction_nanos(frac);
    let total = secs * NANOS_PER_SEC + nanos;
    Some(if negative { -total } else { total })
}

/// The first nine digits of a fraction of a second, as nanoseconds.
fn fraction_nanos(digits: &str) -> i128 {
    let mut nanos = 0i128;
    for i in 0..9 {
        let d = digits.as_bytes().get(i).map_or(0, |b| i128::from(b - b'0'));
        nanos = nanos * 10 + d;
    }
    nanos
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn number(&mut self, width: usize) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + width)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.pos += width;
        Some(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    }

    fn eat(&mut self, options: &[u8]) -> Option<u8> {
        let c = *self.bytes.get(self.pos)?;
        if options.contains(&c) {
            self.pos += 1;
            Some(c)
        } else {
            None
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

fn parse_iso8601(s: &str) -> Option<i128> {
    let mut cur = Cursor {
        bytes: s.as_bytes(),
        pos: 0,
    };
    let year = cur.number(4)?;
    let extended = cur.eat(b"-").is_some();
    let month = cur.number(2)?;
    // `YYYY-MM` alone means the first of the month; the basic form always has a day.
    let day = if extended && cur.at_end() {
        1
    } else {
        if extended {
            cur.eat(b"-")?;
        }
        cur.number(2)?
    };
    // The calendar is the `time` crate's: a day the month does not have
    // (2024-02-30) is no date.
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?)
            .ok()?;
    let mut secs_of_day = 0i128;
    let mut nanos = 0i128;
    let mut offset_secs = 0i128;
    if !cur.at_end() {
        cur.eat(b"Tt")?;
        let hour = cur.number(2)?;
        if extended {
            cur.eat(b":")?;
        }
        let minute = cur.number(2)?;
        let has_seconds = if extended {
            cur.eat(b":").is_some()
        } else {
            cur.bytes.get(cur.pos).is_some_and(u8::is_ascii_digit)
        };
        let second = if has_seconds { cur.number(2)? } else { 0 };
        if has_seconds && cur.eat(b".,").is_some() {
            let start = cur.pos;
            while cur.bytes.get(cur.pos).is_some_and(u8::is_ascii_digit) {
                cur.pos += 1;
            }
            if cur.pos == start {
                return None;
            }
            nanos = fraction_nanos(&s[start..cur.pos]);
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        secs_of_day = i128::from(hour * 3600 + minute * 60 + second);
        match cur.eat(b"Zz+-") {
            None | Some(b'Z' | b'z') => {}
            Some(sign) => {
                let hours = cur.number(2)?;
                if extended {
                    cur.eat(b":")?;
                } else {
                    cur.eat(b":");
                }
                let minutes = cur.number(2)?;
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let offset = i128::from(hours * 3600 + minutes * 60);
                offset_secs = if sign == b'+' { offset } else { -offset };
            }
        }
    }
    if !cur.at_end() {
        return None;
    }
    let midnight = i128::from(date.midnight().assume_utc().unix_timestamp());
    let secs = midnight + secs_of_day - offset_secs;
    Some(secs * NANOS_PER_SEC + nanos)
}

/// An IPv4 or IPv6 range; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
        };
        Some(Cidr { network, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A request's source address. An IPv4-mapped IPv6 address
/// (`::ffff:203.0.113.5`, as a dual-stack socket reports IPv4 peers) is read
/// as the IPv4 address it carries, so IPv4 ranges in policies still apply.
pub(crate) fn parse_request_ip(s: &str) -> Option<IpAddr> {
    match s.parse().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        v4 => Some(v4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> i128 {
        parse_date(s).unwrap_or_else(|| panic!("{s} should parse")) / NANOS_PER_SEC
    }

    #[test]
    fn dates() {
        assert_eq!(secs("1970-01-01"), 0);
        assert_eq!(secs("2019-07-16T12:00:00Z"), 1_563_278_400);
        assert_eq!(secs("2019-07-16T12:00Z"), 1_563_278_400);
        assert_eq!(secs("2019-07-16T14:00:00+02:00"), 1_563_278_400);
        assert_eq!(secs("2019-07-16T12:00:00.999Z"), 1_563_278_400);
        assert_eq!(secs("20190716T120000Z"), 1_563_278_400);
        assert_eq!(secs("1563278400"), 1_563_278_400);
        assert_eq!(secs("2019-07"), secs("2019-07-01"));
        assert_eq!(secs("2000-02-29"), 951_782_400);
        assert_eq!(parse_date("1563278400.5"), Some(1_563_278_400_500_000_000));
        for bad in [
            "",
            "2019-13-01",
            "2019-02-29",
            "2024-02-30",
            "2024-04-31",
            "2019-00-10",
            "2019-07-00",
            "2019-07-16T24:00Z",
            "2019-07-16T12",
            "2019-07-16X",
            "yesterday",
            "1.",
            "2019-07-16T12:00:00+0200",
            "12345678901234567890",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        for bad in ["", "1e3", "inf", "NaN", ".5", "5.", "1,0", " 1"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        let net = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(net.contains("203.0.113.255".parse().unwrap()));
        assert!(!net.contains("203.0.114.0".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        let host = Cidr::parse("2001:DB8::1").unwrap();
        assert!(host.contains("2001:db8::1".parse().unwrap()));
        assert!(!host.contains("2001:db8::2".parse().unwrap()));
        assert!(!net.contains("::ffff:203.0.113.1".parse().unwrap()));
        assert_eq!(
            parse_request_ip("::ffff:203.0.113.1"),
            Some("203.0.113.1".parse().unwrap())
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "::/129",
            "10.0.0.0/+8",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}
