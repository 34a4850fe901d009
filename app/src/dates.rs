//! Dates and times as a person reads them: in the browser's time zone and language, days named
//! "Today", "Yesterday", a weekday within the last week, then the date; the full date and time on
//! hover. On the server (which never renders message times) and in native tests: UTC, in English.

/// A calendar day: (year, month 1–12, day 1–31).
pub type Ymd = (i32, u32, u32);

/// Days since 1970-01-01 of a day of the proleptic Gregorian calendar (H. Hinnant's
/// `days_from_civil`).
pub fn days_from_civil((year, month, day): Ymd) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The day of a number of days since 1970-01-01 (the inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> Ymd {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// How a day separator names a day, seen from `today`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayName {
    Today,
    Yesterday,
    /// 2 to 6 days ago: the weekday (0 = Monday).
    Weekday(u32),
    /// Longer ago (or a date ahead of this device's clock): the date itself.
    Date,
}

pub fn name_day(day: Ymd, today: Ymd) -> DayName {
    let (d, t) = (days_from_civil(day), days_from_civil(today));
    match t - d {
        0 => DayName::Today,
        1 => DayName::Yesterday,
        // 1970-01-01 was a Thursday (3, counting from Monday).
        2..=6 => DayName::Weekday((d + 3).rem_euclid(7) as u32),
        _ => DayName::Date,
    }
}

/// A day key `YYYY-MM-DD` (as [`day_and_time`] gives it) as a day.
pub fn parse_day(key: &str) -> Option<Ymd> {
    let mut parts = key.splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok().filter(|m| (1..=12).contains(m))?;
    let day = parts.next()?.parse().ok().filter(|d| (1..=31).contains(d))?;
    Some((year, month, day))
}

/// The calendar day (`YYYY-MM-DD`, for grouping) and the time of day (`HH:MM`) of an RFC 3339
/// timestamp, in the browser's time zone (UTC elsewhere).
pub fn day_and_time(rfc3339: &str) -> (String, String) {
    #[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
    {
        // The timeline asks again for every message each time it changes: a JavaScript `Date`
        // per answer would cost more than the rest of its work. Kept per tab, a few thousand at most.
        thread_local! {
            static KNOWN: std::cell::RefCell<std::collections::HashMap<String, (String, String)>> =
                std::cell::RefCell::default();
        }
        const KEPT: usize = 20_000;
        if let Some(known) = KNOWN.with_borrow(|k| k.get(rfc3339).cloned()) {
            return known;
        }
        if let Some(date) = browser::date(rfc3339) {
            let day = format!("{:04}-{:02}-{:02}", date.get_full_year(), date.get_month() + 1, date.get_date());
            let answer = (day, format!("{:02}:{:02}", date.get_hours(), date.get_minutes()));
            KNOWN.with_borrow_mut(|k| {
                if k.len() >= KEPT {
                    k.clear();
                }
                k.insert(rfc3339.to_owned(), answer.clone());
            });
            return answer;
        }
    }
    let day = rfc3339.get(..10).unwrap_or_default().to_owned();
    let time = rfc3339.get(11..16).unwrap_or_default().to_owned();
    (day, time)
}

/// Milliseconds since the epoch of an RFC 3339 timestamp (`2026-12-07T20:48:13.5Z`, or with an
/// offset such as `+01:00`); `None` if it is not one.
pub fn epoch_ms(rfc3339: &str) -> Option<u64> {
    let b = rfc3339.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { rfc3339.get(r)?.parse().ok() };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let day = (i32::try_from(num(0..4)?).ok()?, u32::try_from(num(5..7)?).ok()?, u32::try_from(num(8..10)?).ok()?);
    let (h, m, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &rfc3339[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let first3: String = frac[..digits].chars().chain(std::iter::repeat('0')).take(3).collect();
        ms = first3.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?)
        }
        _ => return None,
    };
    let secs = days_from_civil(day) * 86_400 + h * 3_600 + m * 60 + s - offset_min * 60;
    u64::try_from(secs * 1_000 + ms).ok()
}

/// Milliseconds since the epoch, now (the browser's clock in the browser).
pub fn now_ms() -> u64 {
    #[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
    {
        js_sys::Date::now() as u64
    }
    #[cfg(not(all(target_arch = "wasm32", feature = "hydrate")))]
    {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// An RFC 3339 timestamp (UTC) of milliseconds since the epoch.
pub fn rfc3339_of_ms(ms: u64) -> String {
    let secs = (ms / 1_000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", t / 3_600, t % 3_600 / 60, t % 60, ms % 1_000)
}

const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// What a day separator says for the day key `key`: "Today", "Yesterday", the weekday, or the date
/// in the reader's language.
pub fn day_label(key: &str) -> String {
    let Some(day) = parse_day(key) else { return key.to_owned() };
    match name_day(day, today()) {
        DayName::Today => "Today".to_owned(),
        DayName::Yesterday => "Yesterday".to_owned(),
        DayName::Weekday(w) => {
            #[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
            if let Some(name) = browser::day(day, false) {
                return name;
            }
            WEEKDAYS[w as usize % 7].to_owned()
        }
        DayName::Date => {
            #[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
            if let Some(name) = browser::day(day, true) {
                return name;
            }
            key.to_owned()
        }
    }
}

/// The time of day of a message, in the reader's language ("14:05", "2:05 PM").
pub fn time_label(rfc3339: &str) -> String {
    #[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
    if let Some(t) =
        browser::date(rfc3339).and_then(|d| browser::format(&d, &[("hour", "numeric"), ("minute", "2-digit")]))
    {
        return t;
    }
    day_and_time(rfc3339).1
}

/// The full date and time, for hovering over a message's time.
pub fn full_time(rfc3339: &str) -> String {
    #[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
    if let Some(t) =
        browser::date(rfc3339).and_then(|d| browser::format(&d, &[("dateStyle", "full"), ("timeStyle", "medium")]))
    {
        return t;
    }
    let (day, time) = day_and_time(rfc3339);
    format!("{day} {time} UTC")
}

/// Today, in the browser's time zone (UTC elsewhere).
fn today() -> Ymd {
    #[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
    {
        let now = js_sys::Date::new_0();
        (now.get_full_year() as i32, now.get_month() + 1, now.get_date())
    }
    #[cfg(not(all(target_arch = "wasm32", feature = "hydrate")))]
    {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        civil_from_days(secs.div_euclid(86_400))
    }
}

#[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
mod browser {
    use super::Ymd;
    use wasm_bindgen::JsValue;

    pub(super) fn date(rfc3339: &str) -> Option<js_sys::Date> {
        let date = js_sys::Date::new(&JsValue::from_str(rfc3339));
        (!date.get_time().is_nan()).then_some(date)
    }

    fn language() -> String {
        web_sys::window().and_then(|w| w.navigator().language()).unwrap_or_else(|| "en".to_owned())
    }

    /// `date` formatted by `Intl` with these options, in the browser's language. A formatter is
    /// made once per set of options and kept: making one costs about a millisecond, more than a
    /// whole message row without it (`toLocaleString` makes one per call).
    pub(super) fn format(date: &js_sys::Date, options: &[(&str, &str)]) -> Option<String> {
        thread_local! {
            static FORMATS: std::cell::RefCell<std::collections::HashMap<String, js_sys::Function>> =
                std::cell::RefCell::default();
        }
        let key: String = options.iter().map(|(k, v)| format!("{k}={v};")).collect();
        let format = match FORMATS.with_borrow(|f| f.get(&key).cloned()) {
            Some(format) => format,
            None => {
                let o = js_sys::Object::new();
                for (k, v) in options {
                    js_sys::Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_str(v)).ok()?;
                }
                let locales = js_sys::Array::of1(&JsValue::from_str(&language()));
                let format = js_sys::Intl::DateTimeFormat::new(&locales, &o).format();
                FORMATS.with_borrow_mut(|f| f.insert(key, format.clone()));
                format
            }
        };
        let text = format.call1(&JsValue::NULL, date).ok()?.as_string()?;
        (!text.is_empty() && text != "Invalid Date").then_some(text)
    }

    /// A day's weekday, or its whole date (with the year when it is not this year's).
    pub(super) fn day((y, m, d): Ymd, whole: bool) -> Option<String> {
        let date = js_sys::Date::new_with_year_month_day(y as u32, m as i32 - 1, d as i32);
        if !whole {
            return format(&date, &[("weekday", "long")]);
        }
        let this_year = js_sys::Date::new_0().get_full_year() as i32 == y;
        let mut options = vec![("weekday", "long"), ("month", "long"), ("day", "numeric")];
        if !this_year {
            options.push(("year", "numeric"));
        }
        format(&date, &options)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_to_milliseconds_and_back() {
        use super::{epoch_ms, rfc3339_of_ms};
        assert_eq!(epoch_ms("1970-01-01T00:00:01Z"), Some(1_000));
        assert_eq!(epoch_ms("2026-12-07T20:48:13.123456Z"), Some(1_796_676_493_123));
        assert_eq!(epoch_ms("2026-12-07T21:48:13.123+01:00"), Some(1_796_676_493_123));
        assert_eq!(rfc3339_of_ms(1_796_676_493_123), "2026-12-07T20:48:13.123Z");
        for bad in ["", "yesterday", "2026-12-07", "2026-12-07T20:48:13", "2026-12-07T20:48:13+0100"] {
            assert_eq!(epoch_ms(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn days_count_from_the_epoch_both_ways() {
        assert_eq!(days_from_civil((1970, 1, 1)), 0);
        assert_eq!(days_from_civil((2000, 3, 1)), 11_017);
        assert_eq!(days_from_civil((1969, 12, 31)), -1);
        for days in [-800_000, -1, 0, 59, 60, 11_016, 20_819, 2_932_896] {
            assert_eq!(days_from_civil(civil_from_days(days)), days, "{days}");
        }
        assert_eq!(civil_from_days(days_from_civil((2024, 2, 29)) + 1), (2024, 3, 1));
    }

    #[test]
    fn days_are_named_as_a_reader_says_them() {
        let today = (2026, 12, 7); // a Monday
        assert_eq!(name_day((2026, 12, 7), today), DayName::Today);
        assert_eq!(name_day((2026, 12, 6), today), DayName::Yesterday);
        assert_eq!(name_day((2026, 12, 5), today), DayName::Weekday(5), "Saturday");
        assert_eq!(name_day((2026, 12, 1), today), DayName::Weekday(1), "Tuesday");
        assert_eq!(name_day((2026, 11, 30), today), DayName::Date, "a week ago: the date");
        assert_eq!(name_day((2027, 1, 1), today), DayName::Date, "ahead of the clock");
        assert_eq!(name_day((2026, 12, 31), (2027, 1, 1)), DayName::Yesterday, "across a year");
        assert_eq!(name_day((2024, 2, 29), (2024, 3, 1)), DayName::Yesterday, "across a leap day");
    }

    #[test]
    fn day_keys_parse_strictly() {
        assert_eq!(parse_day("2026-12-07"), Some((2026, 12, 7)));
        assert_eq!(parse_day("2026-13-07"), None);
        assert_eq!(parse_day("2026-12"), None);
        assert_eq!(parse_day("garbage"), None);
        assert_eq!(day_label("garbage"), "garbage");
        assert_eq!(day_label("1999-01-01"), "1999-01-01");
        assert_eq!(day_and_time("2026-11-25T10:04:59.123Z"), ("2026-11-25".into(), "10:04".into()));
    }
}
