import LongWork
import XCTest

/// Progress lines on a terminal and in a log file.
final class ConsoleLogTests: XCTestCase {
    /// Off a terminal, redraws become plain lines: one per interval, and the last state when the
    /// progress line ends; other text passes unchanged.
    func testRedrawsBecomePlainLinesOffATerminal() {
        var clock = 0.0, out: [String] = []
        let log = ConsoleLog(isTerminal: false, interval: 5, now: { clock }, sink: { out.append($0) })
        for step in 1...10 {
            clock = Double(step)
            log.write("\rstep \(step)/10   ")
        }
        log.write("\n")
        log.write("done\n")
        XCTAssertEqual(out, ["step 1/10\n", "step 6/10\n", "step 10/10\n", "done\n"])
        var terminal: [String] = []
        let tty = ConsoleLog(isTerminal: true, sink: { terminal.append($0) })
        tty.write("\rstep 1/10")
        XCTAssertEqual(terminal, ["\rstep 1/10"])
    }

    func testDurations() {
        XCTAssertEqual(formatDuration(187), "3m07s")
        XCTAssertEqual(formatDuration(3900), "1h05m")
        XCTAssertEqual(formatDuration(.infinity), "?")
    }
}
