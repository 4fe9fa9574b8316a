import Foundation
import Tensor
import XCTest

final class SafeTensorsTests: XCTestCase {
    func testRoundTripWithIntegerBuffersAndMetadata() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("w.safetensors")
        let a = randomTensor([2, 3, 4], seed: 1)
        try SafeTensors.write(["a": .float32(a), "n": .int64(shape: [], values: [7])], metadata: ["format": "pt"], to: url)
        let (tensors, meta) = try SafeTensors.read(url)
        XCTAssertEqual(tensors["a"]!.shape, [2, 3, 4])
        XCTAssertEqual(tensors["a"]!.toArray(), a.toArray())
        XCTAssertEqual(tensors["n"]!.shape, [])
        XCTAssertEqual(tensors["n"]!.item(), 7)
        XCTAssertEqual(meta["format"], "pt")
        // the header length is 8-aligned
        let data = try Data(contentsOf: url)
        let headerLength = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(headerLength % 8, 0)
    }

    func testDurableWritesMakeTheirFolderAndNameTheFileTheyFailOn() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("durable-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let nested = dir.appendingPathComponent("a/b/figures.json")
        try DurableFiles.write(Data("{}".utf8), to: nested)
        XCTAssertEqual(try Data(contentsOf: nested), Data("{}".utf8))
        // a folder where the file should go: the error names the file, not the temporary one
        let blocked = dir.appendingPathComponent("a/b")
        XCTAssertThrowsError(try DurableFiles.write(Data("{}".utf8), to: blocked)) {
            XCTAssertTrue("\($0)".hasPrefix("\(blocked.path): cannot"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("a").path), ["b"])
    }

    func testTruncatedFileIsAnErrorNamingTheFile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("trunc-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try SafeTensors.write(["a": .float32(randomTensor([64], seed: 2))], to: url)
        let data = try Data(contentsOf: url)
        try data.prefix(data.count - 10).write(to: url)
        XCTAssertThrowsError(try SafeTensors.read(url)) { error in
            XCTAssertTrue("\(error)".contains(url.path), "\(error)")
            XCTAssertTrue("\(error)".contains("'a'"), "\(error)")
        }
    }

    /// What the fuzzed-input suite found read silently before the header had its own checksum
    /// (a changed metadata value, a damaged name of the checksum entry), and what could trap
    /// before the reader checked its arithmetic (a header length beyond Int, a negative shape).
    func testDamageTheChecksumsCatch() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("damage-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try SafeTensors.write(["a": .float32(randomTensor([64], seed: 2))], metadata: ["arch": "r3d_18"], to: url)
        let original = try Data(contentsOf: url)
        func refused(_ change: (inout Data) -> Void, _ expected: String) throws {
            var d = original
            change(&d)
            try d.write(to: url)
            XCTAssertThrowsError(try SafeTensors.read(url)) { XCTAssertTrue("\($0)".contains(expected), "\($0)") }
        }
        func replace(_ d: inout Data, _ a: String, _ b: String) {
            let range = try! XCTUnwrap(d.range(of: Data(a.utf8)))
            d.replaceSubrange(range, with: Data(b.utf8))
        }
        try refused({ replace(&$0, "r3d_18", "r3d_19") }, "the header (names, shapes or metadata) fails its checksum")
        try refused({ replace(&$0, "maclr.fnv1a64", "maclr.fnv1a65") }, "under a damaged name")
        try refused({ $0[$0.count - 5] ^= 0x01 }, "tensor 'a' fails its checksum")
        try refused({ $0.replaceSubrange(0..<8, with: Data(repeating: 0xFF, count: 8)) }, "does not fit")
        try refused({ replace(&$0, "[64]", "[-1]") }, "does not match shape")
    }
}
