import Foundation
import Testing
@testable import SlipwayCore

/// The cron schedule parser and next-run computation, and app.json `cron` validation.
@Suite struct CronScheduleTests {
    let utc = TimeZone(identifier: "UTC")!

    /// `2026-03-01 12:34` in `zone` (a wall-clock time).
    func at(_ text: String, _ zone: TimeZone) -> Date {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        return formatter.date(from: text)!
    }

    func show(_ date: Date?, _ zone: TimeZone) -> String {
        guard let date else { return "never" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = "yyyy-MM-dd HH:mm EEE zzz"
        return formatter.string(from: date)
    }

    /// The next `count` runs after `start`, as wall-clock text.
    func runs(_ schedule: String, after start: String, count: Int = 1, zone: TimeZone? = nil) throws -> [String] {
        let zone = zone ?? utc
        let parsed = try CronSchedule(schedule)
        var time = at(start, zone)
        var out: [String] = []
        for _ in 0..<count {
            guard let next = parsed.next(after: time, in: zone) else { out.append("never"); break }
            out.append(show(next, zone).components(separatedBy: " ").prefix(3).joined(separator: " "))
            time = next
        }
        return out
    }

    @Test func everyFieldForm() throws {
        #expect(try runs("* * * * *", after: "2026-03-01 12:34", count: 2) == ["2026-03-01 12:35 Sun", "2026-03-01 12:36 Sun"])
        #expect(try runs("*/15 * * * *", after: "2026-03-01 12:34", count: 3) == ["2026-03-01 12:45 Sun", "2026-03-01 13:00 Sun", "2026-03-01 13:15 Sun"])
        #expect(try runs("5,10-12 * * * *", after: "2026-03-01 12:05", count: 4)
                == ["2026-03-01 12:10 Sun", "2026-03-01 12:11 Sun", "2026-03-01 12:12 Sun", "2026-03-01 13:05 Sun"])
        #expect(try runs("10-30/10 8 * * *", after: "2026-03-01 12:00", count: 3) == ["2026-03-02 08:10 Mon", "2026-03-02 08:20 Mon", "2026-03-02 08:30 Mon"])
        // `N/STEP` is N through the end of the range.
        #expect(try runs("50/5 * * * *", after: "2026-03-01 12:00", count: 3) == ["2026-03-01 12:50 Sun", "2026-03-01 12:55 Sun", "2026-03-01 13:50 Sun"])
        #expect(try runs("0 0 * * 7", after: "2026-03-01 12:00") == ["2026-03-08 00:00 Sun"])
    }

    @Test func monthAndDayNames() throws {
        #expect(try runs("0 9 * * mon-fri", after: "2026-03-06 10:00", count: 2) == ["2026-03-09 09:00 Mon", "2026-03-10 09:00 Tue"])
        #expect(try runs("0 9 1 JAN,Jul *", after: "2026-03-06 10:00", count: 2) == ["2026-07-01 09:00 Wed", "2027-01-01 09:00 Fri"])
        #expect(try runs("0 0 * feb-mar/1 sat", after: "2026-03-27 10:00", count: 2) == ["2026-03-28 00:00 Sat", "2027-02-06 00:00 Sat"])
    }

    @Test func shorthands() throws {
        #expect(try runs("@hourly", after: "2026-03-01 12:34") == ["2026-03-01 13:00 Sun"])
        #expect(try runs("@daily", after: "2026-03-01 12:34") == ["2026-03-02 00:00 Mon"])
        #expect(try runs("@midnight", after: "2026-03-01 12:34") == ["2026-03-02 00:00 Mon"])
        #expect(try runs("@weekly", after: "2026-03-01 12:34") == ["2026-03-08 00:00 Sun"])
        #expect(try runs("@monthly", after: "2026-03-01 12:34") == ["2026-04-01 00:00 Wed"])
        #expect(try runs("@yearly", after: "2026-03-01 12:34") == ["2027-01-01 00:00 Fri"])
        #expect(try runs("@annually", after: "2026-03-01 12:34") == ["2027-01-01 00:00 Fri"])
        #expect(throws: CronScheduleError.self) { try CronSchedule("@reboot") }
    }

    /// Either day field matches when both are restricted; only the other when one is `*`.
    @Test func dayOfMonthOrDayOfWeek() throws {
        #expect(try runs("0 0 13 * fri", after: "2026-03-01 00:00", count: 3) == ["2026-03-06 00:00 Fri", "2026-03-13 00:00 Fri", "2026-03-20 00:00 Fri"])
        #expect(try runs("0 0 13 * *", after: "2026-03-01 00:00", count: 2) == ["2026-03-13 00:00 Fri", "2026-04-13 00:00 Mon"])
    }

    @Test func acrossMonthEndsAndLeapYears() throws {
        #expect(try runs("0 12 31 * *", after: "2026-01-31 12:00", count: 3) == ["2026-03-31 12:00 Tue", "2026-05-31 12:00 Sun", "2026-07-31 12:00 Fri"])
        #expect(try runs("30 23 28-31 * *", after: "2026-02-27 00:00", count: 2) == ["2026-02-28 23:30 Sat", "2026-03-28 23:30 Sat"])
        #expect(try runs("0 0 29 2 *", after: "2026-03-01 00:00") == ["2028-02-29 00:00 Tue"])
        #expect(try runs("59 23 31 12 *", after: "2026-12-31 23:59") == ["2027-12-31 23:59 Fri"])
    }

    /// Europe/Berlin: 2026-03-29 02:00 jumps to 03:00; 2026-10-25 03:00 goes back to 02:00.
    @Test func daylightSavingInANamedZone() throws {
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        // A time the spring-forward skips does not run that day.
        let spring = try CronSchedule("30 2 * * *")
        let afterSaturday = spring.next(after: at("2026-03-28 03:00", berlin), in: berlin)!
        #expect(show(afterSaturday, berlin) == "2026-03-30 02:30 Mon GMT+2")
        // Every minute stays every real minute across the jump: 01:59 then 03:00.
        let everyMinute = try CronSchedule("* * * * *")
        #expect(show(everyMinute.next(after: at("2026-03-29 01:59", berlin), in: berlin), berlin) == "2026-03-29 03:00 Sun GMT+2")
        // The repeated hour: a fixed-hour schedule runs once, at the first 02:30.
        let fall = try CronSchedule("30 2 * * *")
        let first = fall.next(after: at("2026-10-25 00:00", berlin), in: berlin)!
        #expect(show(first, berlin) == "2026-10-25 02:30 Sun GMT+2")
        #expect(show(fall.next(after: first, in: berlin), berlin) == "2026-10-26 02:30 Mon GMT+1")
        // An hourly schedule keeps every real hour, both 02:00s included.
        let hourly = try CronSchedule("0 * * * *")
        let two = hourly.next(after: at("2026-10-25 01:30", berlin), in: berlin)!
        let again = hourly.next(after: two, in: berlin)!
        #expect(again.timeIntervalSince(two) == 3600)
        #expect(show(again, berlin) == "2026-10-25 02:00 Sun GMT+1")
        // Daily at midnight in the zone, not in UTC.
        #expect(show(try CronSchedule("@daily").next(after: at("2026-07-01 12:00", berlin), in: berlin), utc) == "2026-07-01 22:00 Wed GMT")
    }

    @Test func badSchedulesAreRefusedWithTheirReason() {
        func reason(_ text: String) -> String {
            do { _ = try CronSchedule(text); return "accepted" } catch { return error.reason }
        }
        #expect(reason("* * * *").contains("five fields"))
        #expect(reason("* * * * * *").contains("five fields"))
        #expect(reason("").contains("five fields"))
        #expect(reason("60 * * * *").contains("minute 60 is outside 0-59"))
        #expect(reason("* 24 * * *").contains("hour 24"))
        #expect(reason("* * 0 * *").contains("day-of-month 0"))
        #expect(reason("* * * 13 *").contains("month 13"))
        #expect(reason("* * * * 8").contains("day-of-week 8"))
        #expect(reason("*/0 * * * *").contains("step"))
        #expect(reason("5-1 * * * *").contains("backwards"))
        #expect(reason("1,,2 * * * *").contains("empty"))
        #expect(reason("* * * foo *").contains("\"foo\""))
        #expect(reason("* * * * funday").contains("\"funday\""))
        #expect(reason("a * * * *").contains("\"a\""))
        #expect(reason("-1 * * * *") != "accepted")
        #expect(reason("1/2/3 * * * *").contains("more than one /"))
        #expect(reason("0 0 30 2 *").contains("never runs"))
        #expect(reason("@often").contains("shorthand"))
    }

    // MARK: app.json cron

    func plan(_ cron: String) throws -> DeployPlan {
        try DeployPlan.parse(procfile: "web: serve\n", appJSON: "{\"cron\": \(cron)}")
    }

    func refusal(_ cron: String) -> String {
        do { _ = try plan(cron); return "accepted" } catch let error as UserFacingError { return error.message } catch { return "\(error)" }
    }

    @Test func entriesAreReadIntoThePlan() throws {
        let read = try plan("""
            [{"command": "bin/report --daily 'last week'", "schedule": "@daily"},
             {"command": "sh -c 'date >> /data/log && sync'", "schedule": "*/5 * * * *", "concurrency_policy": "forbid", "timeout": 120}]
            """)
        let entries = try #require(read.cron)
        #expect(entries.count == 2)
        #expect(entries[0].arguments == ["bin/report", "--daily", "last week"])
        #expect(entries[0].concurrencyPolicy == .allow)
        #expect(entries[1].arguments == ["sh", "-c", "date >> /data/log && sync"])
        #expect(entries[1].concurrencyPolicy == .forbid && entries[1].timeout == 120)
        #expect(read.ignoredKeys.isEmpty)
        // Ids: stable for the same schedule and command, different otherwise.
        #expect(entries[0].id == CronEntry(command: "bin/report --daily 'last week'", schedule: "@daily", concurrencyPolicy: .replace).id)
        #expect(entries[0].id != CronEntry(command: "bin/report --daily 'last week'", schedule: "@hourly").id)
        #expect(entries[0].id.count == 10)
        // Stored in the release snapshot and read back; a plan without cron keeps its old encoding.
        let encoded = try JSONEncoder().encode(read)
        #expect(try JSONDecoder().decode(DeployPlan.self, from: encoded).cron == entries)
        #expect(!String(decoding: try JSONEncoder().encode(try DeployPlan.parse(procfile: "web: x\n", appJSON: "{}")), as: UTF8.self).contains("cron"))
        #expect(try plan("[]").cron == nil)
    }

    @Test func badEntriesNameTheirIndexAndReason() {
        #expect(refusal("{}").contains("must be a list"))
        #expect(refusal("[\"x\"]").contains("cron[0] must be an object"))
        #expect(refusal("[{\"command\": \"a\", \"schedule\": \"@daily\"}, {\"command\": \"b\", \"schedule\": \"@daily\", \"when\": 1}]")
                .contains("cron[1]: unknown key \"when\""))
        #expect(refusal("[{\"command\": \"  \", \"schedule\": \"@daily\"}]").contains("cron[0]: command is empty"))
        #expect(refusal("[{\"schedule\": \"@daily\"}]").contains("cron[0]: command must be a string"))
        #expect(refusal("[{\"command\": \"a\"}]").contains("cron[0]: schedule must be a string"))
        #expect(refusal("[{\"command\": \"a\", \"schedule\": \"61 * * * *\"}]").contains("cron[0]: schedule \"61 * * * *\" minute 61 is outside"))
        #expect(refusal("[{\"command\": \"a\", \"schedule\": \"@daily\", \"concurrency_policy\": \"queue\"}]").contains("allow, forbid, replace"))
        for timeout in ["0", "1.5", "true", "\"60\"", "86401"] {
            #expect(refusal("[{\"command\": \"a\", \"schedule\": \"@daily\", \"timeout\": \(timeout)}]").contains("cron[0]: timeout must be a whole number"))
        }
        #expect(refusal("[{\"command\": \"a\", \"schedule\": \"@daily\"}, {\"command\": \"a\", \"schedule\": \"@daily\"}]").contains("cron[1]: the same command"))
        let many = "[" + (0...CronEntry.maximumEntries).map { "{\"command\": \"a\($0)\", \"schedule\": \"@daily\"}" }.joined(separator: ",") + "]"
        #expect(refusal(many).contains("at most \(CronEntry.maximumEntries)"))
    }

    /// Commands run as an argument list: what only a shell would do is refused, saying how.
    @Test func shellOperatorsOutsideQuotesAreRefused() {
        for command in ["echo a && echo b", "ls | wc", "a; b", "echo x > /data/f", "echo x >> f", "cat < f", "echo $(id)", "echo `id`",
                        "echo $HOME", "sleep 1 &", "(a)", "echo \"$HOME\"", "a || b", "a\nb"] {
            let message = refusal("[{\"command\": \(String(data: try! JSONEncoder().encode(command), encoding: .utf8)!), \"schedule\": \"@daily\"}]")
            #expect(message.contains("cron[0]: command"), "\(command): \(message)")
            #expect(message.contains("without a shell") || message.contains("more than one line"), "\(command): \(message)")
        }
        #expect(refusal("[{\"command\": \"echo 'unclosed\", \"schedule\": \"@daily\"}]").contains("unclosed"))
        // Quoted, they are the program's text.
        #expect((try? CommandWords.split("sh -c 'a && b | c > d; $(e)'")) == ["sh", "-c", "a && b | c > d; $(e)"])
        #expect((try? CommandWords.split("printf \"%s\\n\" a\\ b ''")) == ["printf", "%s\\n", "a b", ""])
    }
}
