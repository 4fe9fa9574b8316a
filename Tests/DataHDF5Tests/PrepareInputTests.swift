import DataHDF5
import Foundation
import XCTest

/// What `maclr prepare` reads as its list of videos.
final class PrepareInputTests: XCTestCase {
    /// A quoted path with a comma in it is one field (the CSV parser is SwiftCSV's).
    func testCSVInputsWithQuotedCommas() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("csv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("labels.csv")
        try "path,label,split\n\"clips/a, b.mp4\",walk,train\nclips/c.mp4,\"run, fast\",test\n".write(to: csv, atomically: true, encoding: .utf8)
        let inputs = try Preparation.discover(csv)
        XCTAssertEqual(inputs.map(\.path), [dir.appendingPathComponent("clips/a, b.mp4").path, dir.appendingPathComponent("clips/c.mp4").path])
        XCTAssertEqual(inputs.map(\.label), ["walk", "run, fast"])
        XCTAssertEqual(inputs.map(\.splits), [["train"], ["test"]])
        // no header: the first line is a video
        try "x.mp4,1\ny.mp4,0\n".write(to: csv, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Preparation.discover(csv).map(\.label), ["1", "0"])
    }
}
