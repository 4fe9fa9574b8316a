import Foundation

/// Scalars in TensorBoard's event-file format, so `tensorboard --logdir runs/` plots every run.
///
/// The file is a sequence of records: length (UInt64, little-endian), the masked CRC-32C of
/// those 8 bytes, the payload, and the payload's masked CRC-32C. Each payload is an `Event`
/// protocol buffer: wall_time (field 1, double), step (2, int64) and either file_version (3,
/// string; the first record) or a Summary (5) of Values, each a tag (1, string) and a
/// simple_value (2, float). Written by hand: these few fields need no protobuf library.
public final class TensorBoardWriter {
    public let url: URL
    private let handle: FileHandle

    /// Starts a new events file in `folder` (one per process, as TensorBoard's own writers do).
    public init(folder: URL, wallTime: Double = Date().timeIntervalSince1970) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName
        url = folder.appendingPathComponent(String(format: "events.out.tfevents.%010d.%@.%d", Int(wallTime), host, getpid()))
        guard FileManager.default.createFile(atPath: url.path, contents: nil), let h = FileHandle(forWritingAtPath: url.path) else {
            throw TrainingError("\(url.path): cannot create the TensorBoard events file")
        }
        handle = h
        var event = ProtoWriter()
        event.double(field: 1, wallTime)
        event.bytes(field: 3, Array("brain.Event:2".utf8))
        try write(record: event.bytes)
    }

    deinit { try? handle.close() }

    /// One event holding `scalars` (tag -> value) at `step`.
    public func add(scalars: [(String, Float)], step: Int, wallTime: Double = Date().timeIntervalSince1970) throws {
        var summary = ProtoWriter()
        for (tag, value) in scalars {
            var v = ProtoWriter()
            v.bytes(field: 1, Array(tag.utf8))
            v.float(field: 2, value)
            summary.bytes(field: 1, v.bytes)
        }
        var event = ProtoWriter()
        event.double(field: 1, wallTime)
        event.varint(field: 2, UInt64(bitPattern: Int64(step)))
        event.bytes(field: 5, summary.bytes)
        try write(record: event.bytes)
    }

    private func write(record payload: [UInt8]) throws {
        var out: [UInt8] = []
        let length = withUnsafeBytes(of: UInt64(payload.count).littleEndian, Array.init)
        out += length
        out += withUnsafeBytes(of: CRC32C.masked(length).littleEndian, Array.init)
        out += payload
        out += withUnsafeBytes(of: CRC32C.masked(payload).littleEndian, Array.init)
        try handle.write(contentsOf: out)
    }
}

/// The protocol-buffer wire format, for the fields an event needs.
struct ProtoWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func key(_ field: Int, wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }
    mutating func varint(field: Int, _ value: UInt64) { key(field, wireType: 0); varint(value) }
    mutating func double(field: Int, _ value: Double) {
        key(field, wireType: 1); bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }
    mutating func bytes(field: Int, _ value: [UInt8]) { key(field, wireType: 2); varint(UInt64(value.count)); bytes += value }
    mutating func float(field: Int, _ value: Float) {
        key(field, wireType: 5); bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord files check their records.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    static func checksum(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in data { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    /// TFRecord's masking: rotated right by 15 and offset, so a CRC of CRCs is not a CRC.
    static func masked(_ data: [UInt8]) -> UInt32 {
        let crc = checksum(data)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
