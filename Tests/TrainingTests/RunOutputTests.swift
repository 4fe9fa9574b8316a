import Foundation
@testable import Training
import XCTest

/// What a run leaves for people: TensorBoard events.
final class RunOutputTests: XCTestCase {
    /// Reads an events file back: every record's two CRCs, then each event's step and scalars.
    static func readEvents(_ url: URL) throws -> [(step: Int, fileVersion: String?, scalars: [String: Float])] {
        let data = [UInt8](try Data(contentsOf: url))
        func le<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            data[at..<(at + MemoryLayout<T>.size)].enumerated().reduce(T(0)) { $0 | T($1.element) << (8 * $1.offset) }
        }
        var events: [(Int, String?, [String: Float])] = []
        var at = 0
        while at < data.count {
            let length = Int(le(at, UInt64.self))
            XCTAssertEqual(le(at + 8, UInt32.self), CRC32C.masked(Array(data[at..<(at + 8)])), "length CRC at \(at)")
            let payload = Array(data[(at + 12)..<(at + 12 + length)])
            XCTAssertEqual(le(at + 12 + length, UInt32.self), CRC32C.masked(payload), "payload CRC at \(at)")
            at += 12 + length + 4
            var step = 0, version: String?, scalars: [String: Float] = [:]
            for (field, value) in Self.fields(payload) {
                switch field {
                case 2: step = Int(value.varint!)
                case 3: version = String(decoding: value.bytes!, as: UTF8.self)
                case 5:
                    for (f, v) in Self.fields(value.bytes!) where f == 1 {
                        var tag = "", number: Float = .nan
                        for (ff, vv) in Self.fields(v.bytes!) {
                            if ff == 1 { tag = String(decoding: vv.bytes!, as: UTF8.self) }
                            if ff == 2 { number = Float(bitPattern: vv.fixed32!) }
                        }
                        scalars[tag] = number
                    }
                default: break
                }
            }
            events.append((step, version, scalars))
        }
        XCTAssertEqual(at, data.count, "no trailing bytes")
        return events
    }

    struct WireValue { var varint: UInt64?, fixed32: UInt32?, fixed64: UInt64?, bytes: [UInt8]? }

    static func fields(_ b: [UInt8]) -> [(Int, WireValue)] {
        var out: [(Int, WireValue)] = [], i = 0
        func varint() -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true { let x = b[i]; i += 1; v |= UInt64(x & 0x7F) << shift; if x < 0x80 { return v }; shift += 7 }
        }
        while i < b.count {
            let key = varint(), field = Int(key >> 3)
            switch key & 7 {
            case 0: out.append((field, WireValue(varint: varint())))
            case 1: out.append((field, WireValue(fixed64: b[i..<(i + 8)].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }))); i += 8
            case 2: let n = Int(varint()); out.append((field, WireValue(bytes: Array(b[i..<(i + n)])))); i += n
            case 5: out.append((field, WireValue(fixed32: b[i..<(i + 4)].enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }))); i += 4
            default: XCTFail("wire type \(key & 7)"); return out
            }
        }
        return out
    }

    func testCRC32CMatchesTheStandardCheckValue() {
        // The CRC-32C check value of "123456789" (RFC 3720).
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
    }

    func testEventsFileReadsBackWithItsScalars() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tb-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try TensorBoardWriter(folder: dir, wallTime: 1_700_000_000)
        try writer.add(scalars: [("loss", 2.5), ("lr", 3e-4)], step: 10)
        try writer.add(scalars: [("loss", 1.25)], step: 300)
        let events = try Self.readEvents(writer.url)
        XCTAssertTrue(writer.url.lastPathComponent.hasPrefix("events.out.tfevents.1700000000."))
        XCTAssertEqual(events.count, 3)
        XCTAssertEqual(events[0].fileVersion, "brain.Event:2")
        XCTAssertEqual(events[1].step, 10)
        XCTAssertEqual(events[1].scalars, ["loss": 2.5, "lr": 3e-4])
        XCTAssertEqual(events[2].step, 300)
        XCTAssertEqual(events[2].scalars, ["loss": 1.25])
    }
}
