import Foundation

/// A cron schedule: five fields (minute hour day-of-month month day-of-week) with
/// `*`, lists, ranges, steps and month/day names, or one of the `@daily`-style
/// shorthands. Valid when made; `next(after:in:)` finds the following run.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    /// The text as written in app.json.
    public let text: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    /// 0 is Sunday (7 is accepted and read as 0).
    let daysOfWeek: Set<Int>
    /// Whether the day fields were written other than `*`: when both are, a day
    /// matches either (the classic cron rule); otherwise both must match.
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool
    /// Whether the hour field is `*` (see the repeated hour in `next`).
    let everyHour: Bool

    public var description: String { text }

    static let shorthands: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// Parses `text`; the error says which field is wrong and why (no "error:" prefix:
    /// callers put it after the entry it belongs to).
    public init(_ text: String) throws(CronScheduleError) {
        self.text = text
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let expanded: String
        if trimmed.hasPrefix("@") {
            guard let fields = Self.shorthands[trimmed.lowercased()] else {
                throw CronScheduleError("\(quoted(trimmed)) is not a shorthand cron knows; use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, or five fields")
            }
            expanded = fields
        } else {
            expanded = trimmed
        }
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw CronScheduleError("needs five fields (minute hour day-of-month month day-of-week), e.g. \"*/15 * * * *\"; it has \(fields.count)")
        }
        minutes = try Self.field(fields[0], name: "minute", range: 0...59)
        hours = try Self.field(fields[1], name: "hour", range: 0...23)
        daysOfMonth = try Self.field(fields[2], name: "day-of-month", range: 1...31)
        months = try Self.field(fields[3], name: "month", range: 1...12, names: Self.monthNames, firstName: 1)
        daysOfWeek = Set(try Self.field(fields[4], name: "day-of-week", range: 0...7, names: Self.dayNames, firstName: 0).map { $0 % 7 })
        dayOfMonthRestricted = !fields[2].hasPrefix("*")
        dayOfWeekRestricted = !fields[4].hasPrefix("*")
        everyHour = fields[1] == "*"
        // A day that no month has (30 2 is February 30th) would never run: refused rather than silent.
        if !dayOfWeekRestricted, let earliest = daysOfMonth.min(), months.allSatisfy({ Self.longestMonth[$0 - 1] < earliest }) {
            throw CronScheduleError("never runs: no month it names has day \(earliest)")
        }
    }

    private static let longestMonth = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

    /// One field: comma-separated items, each `*`, `N`, `N-M`, with an optional `/STEP`.
    private static func field(_ text: String, name: String, range: ClosedRange<Int>,
                              names: [String] = [], firstName: Int = 0) throws(CronScheduleError) -> Set<Int> {
        func value(_ token: Substring) throws(CronScheduleError) -> Int {
            if let number = Int(token), token.allSatisfy(\.isASCII) {
                guard range.contains(number) else {
                    throw CronScheduleError("\(name) \(number) is outside \(range.lowerBound)-\(range.upperBound)")
                }
                return number
            }
            if let index = names.firstIndex(of: token.lowercased()) { return index + firstName }
            let hint = names.isEmpty ? "a number from \(range.lowerBound) to \(range.upperBound)"
                : "a number from \(range.lowerBound) to \(range.upperBound) or a name (\(names.prefix(3).joined(separator: ", ")), ...)"
            throw CronScheduleError("\(name) field: \(quoted(String(token))) is not \(hint)")
        }
        var result = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw CronScheduleError("\(name) field \(quoted(text)) has an empty list item") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw CronScheduleError("\(name) field: \(quoted(String(item))) has more than one /") }
            var step = 1
            if parts.count == 2 {
                guard let number = Int(parts[1]), parts[1].allSatisfy(\.isASCII), number >= 1, number <= range.upperBound else {
                    throw CronScheduleError("\(name) field: the step in \(quoted(String(item))) must be a number from 1 to \(range.upperBound)")
                }
                step = number
            }
            let base = parts[0]
            let low: Int, high: Int
            if base == "*" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else {
                    throw CronScheduleError("\(name) field: the range \(quoted(String(base))) runs backwards; write the smaller end first")
                }
            } else {
                low = try value(base)
                // `5/15` is `5-59/15`, as classic cron reads it.
                high = parts.count == 2 ? range.upperBound : low
            }
            result.formUnion(stride(from: low, through: high, by: step))
        }
        return result
    }

    /// The first run strictly after `date` (at a whole minute), wall-clock times read in
    /// `timeZone`; nil when none comes within eight years. Across DST: a time the
    /// spring-forward skips does not run that day; in the repeated hour of fall-back a
    /// schedule with a fixed hour runs once (the first time), `*` hours run every minute
    /// of real time.
    public func next(after date: Date, in timeZone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        var time = Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60)
        let limit = date.addingTimeInterval(8 * 366 * 86_400)
        while time < limit {
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .weekday], from: time)
            let (month, day, hour, minute) = (c.month!, c.day!, c.hour!, c.minute!)
            if !months.contains(month) {
                guard let first = calendar.date(from: DateComponents(year: c.year, month: month + 1, day: 1)) else { return nil }
                time = calendar.startOfDay(for: first)
                continue
            }
            let weekday = c.weekday! - 1
            let dayMatches = dayOfMonthRestricted && dayOfWeekRestricted
                ? daysOfMonth.contains(day) || daysOfWeek.contains(weekday)
                : daysOfMonth.contains(day) && daysOfWeek.contains(weekday)
            if !dayMatches {
                guard let tomorrow = calendar.date(byAdding: .day, value: 1, to: calendar.startOfDay(for: time)) else { return nil }
                time = calendar.startOfDay(for: tomorrow)
                continue
            }
            if !hours.contains(hour) {
                // Real time, not wall time: the next hour boundary, whatever DST does there.
                time = time.addingTimeInterval(TimeInterval(3600 - minute * 60))
                continue
            }
            if !minutes.contains(minute) {
                time = time.addingTimeInterval(60)
                continue
            }
            if !everyHour {
                let hourBefore = calendar.dateComponents([.day, .hour, .minute], from: time.addingTimeInterval(-3600))
                if hourBefore.day == day && hourBefore.hour == hour && hourBefore.minute == minute {
                    // The second pass through a repeated hour: it ran the first time.
                    time = time.addingTimeInterval(60)
                    continue
                }
            }
            return time
        }
        return nil
    }
}

/// Why a cron schedule is not valid.
public struct CronScheduleError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
