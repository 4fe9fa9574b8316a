import Foundation

/// The safetensors file format: an 8-byte little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then raw
/// little-endian data. Read: F32, F64, F16, BF16, I64, I32 (converted to Float32). Write: F32,
/// and I64 for integer buffers such as BatchNorm's num_batches_tracked.
public enum SafeTensors {
    public struct FormatError: Error, CustomStringConvertible {
        public let description: String
    }

    /// A tensor to write, with the dtype it is stored as.
    public enum Entry {
        case float32(Tensor)
        case int64(shape: [Int], values: [Int64])
    }

    /// Metadata key of the per-tensor checksums: "name=fnv1a64hex" joined by ";". PyTorch and
    /// other readers ignore it; `read` verifies it when present.
    public static let checksumKey = "maclr.fnv1a64"

    static func checksum(_ raw: UnsafeRawBufferPointer) -> String { String(format: "%016llx", fnv1a64(raw)) }

    /// The checksum entry that covers the header itself: the metadata and every tensor's dtype,
    /// shape and offsets, so a changed name, shape or metadata value is caught like changed data.
    static let headerEntry = "__header__"

    typealias Descriptor = (dtype: String, shape: [Int], offsets: [Int])

    static func describe(metadata: [String: String], tensors: [String: Descriptor]) -> String {
        var text = metadata.filter { $0.key != checksumKey }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)\n" }.joined()
        for (name, d) in tensors.sorted(by: { $0.key < $1.key }) { text += "\(name)|\(d.dtype)|\(d.shape)|\(d.offsets)\n" }
        return text.utf8CString.withUnsafeBytes { checksum(UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
    }

    /// Writes durably (synced, renamed, folder synced), with each tensor's checksum and the
    /// header's in the metadata.
    public static func write(_ entries: [String: Entry], metadata: [String: String] = [:], to url: URL) throws {
        var header: [String: Any] = [:]
        var offset = 0
        let names = entries.keys.sorted()
        var sums: [String] = [], described: [String: Descriptor] = [:]
        for name in names {
            let d: Descriptor
            switch entries[name]! {
            case .float32(let t):
                d = ("F32", t.shape, [offset, offset + 4 * t.count])
                sums.append("\(name)=" + checksum(UnsafeRawBufferPointer(start: t.data, count: 4 * t.count)))
            case .int64(let shape, let values):
                d = ("I64", shape, [offset, offset + 8 * values.count])
                sums.append("\(name)=" + values.withUnsafeBytes { checksum($0) })
            }
            header[name] = ["dtype": d.dtype, "shape": d.shape, "data_offsets": d.offsets]
            described[name] = d
            offset = d.offsets[1]
        }
        sums.append("\(headerEntry)=" + describe(metadata: metadata, tensors: described))
        header["__metadata__"] = metadata.merging([checksumKey: sums.joined(separator: ";")]) { $1 }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces to 8 bytes so the data is aligned.
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        var len = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            switch entries[name]! {
            case .float32(let t):
                out.append(UnsafeBufferPointer(start: t.data, count: t.count))
            case .int64(_, let values):
                values.withUnsafeBufferPointer { out.append($0) }
            }
        }
        // Written whole to a temporary name, synced, then renamed: neither a crash nor a full disk
        // leaves a half file under the real name.
        try DurableFiles.write(out, to: url)
    }

    /// Reads every tensor as Float32, with the file's metadata.
    public static func read(_ url: URL) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let file = url.path
        guard let data = FileManager.default.contents(atPath: file) else {
            throw FormatError(description: "\(file): cannot read file")
        }
        guard data.count >= 8 else { throw FormatError(description: "\(file): too short for a safetensors header") }
        let declared = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared > 0, declared <= UInt64(data.count - 8) else {
            throw FormatError(description: "\(file): header length \(declared) does not fit a \(data.count)-byte file (truncated?)")
        }
        let headerLength = Int(declared)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any] else {
            throw FormatError(description: "\(file): header is not a JSON object")
        }
        let base = 8 + headerLength
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        if let m = header["__metadata__"] {
            guard let strings = m as? [String: String] else { throw FormatError(description: "\(file): __metadata__ is not a map of strings") }
            metadata = strings
        }
        // a checksum list under any other name is ours with its key damaged
        if let (key, _) = metadata.first(where: { $0.key != checksumKey && $0.value.contains(headerEntry + "=") }) {
            throw FormatError(description: "\(file): metadata key '\(key.prefix(40))' holds maclr's checksums under a damaged name: the file is corrupt")
        }
        var expectedSums: [String: String] = [:]
        if let listed = metadata[checksumKey] {
            for item in listed.split(separator: ";") {
                let parts = item.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { throw FormatError(description: "\(file): malformed checksum entry '\(item.prefix(80))'") }
                expectedSums[String(parts[0])] = String(parts[1])
            }
        }
        var described: [String: Descriptor] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw FormatError(description: "\(file): malformed entry '\(name)'")
            }
            described[name] = (dtype, shape, offsets)
            let width: Int
            switch dtype {
            case "F32", "I32": width = 4
            case "F64", "I64": width = 8
            case "F16", "BF16": width = 2
            default: throw FormatError(description: "\(file): tensor '\(name)' has unsupported dtype \(dtype)")
            }
            var n = 1, overflow = shape.contains { $0 < 0 }
            for d in shape where !overflow { (n, overflow) = n.multipliedReportingOverflow(by: d) }
            let bytes = overflow ? (0, true) : n.multipliedReportingOverflow(by: width)
            guard !overflow, !bytes.1, offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] - offsets[0] == bytes.0,
                  offsets[1] <= data.count - base else {
                throw FormatError(description: "\(file): tensor '\(name)' data \(offsets) does not match shape \(shape) \(dtype) (truncated?)")
            }
            if let expected = expectedSums.removeValue(forKey: name) {
                let actual = data.withUnsafeBytes { checksum(UnsafeRawBufferPointer(rebasing: $0[(base + offsets[0])..<(base + offsets[1])])) }
                guard actual == expected else {
                    throw FormatError(description: "\(file): tensor '\(name)' fails its checksum (stored \(expected), read \(actual)): the file is corrupt")
                }
            }
            let t = Tensor(uninitialized: shape)
            data.withUnsafeBytes { raw in
                let src = raw.baseAddress! + base + offsets[0]
                for i in 0..<n {
                    switch dtype {
                    case "F32": t.data[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    case "I32": t.data[i] = Float(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                    case "F64": t.data[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                    case "I64": t.data[i] = Float(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                    case "F16": t.data[i] = Float(Float16(bitPattern: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
                    default: t.data[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
                    }
                }
            }
            tensors[name] = t
        }
        if let expected = expectedSums.removeValue(forKey: headerEntry), expected != describe(metadata: metadata, tensors: described) {
            throw FormatError(description: "\(file): the header (names, shapes or metadata) fails its checksum: the file is corrupt")
        }
        if let missing = expectedSums.keys.sorted().first {
            throw FormatError(description: "\(file): tensor '\(missing)' is listed in the checksums but not in the header: the file is corrupt")
        }
        return (tensors, metadata)
    }
}
