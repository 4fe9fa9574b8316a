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
}
