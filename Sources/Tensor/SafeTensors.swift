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

    public static func write(_ entries: [String: Entry], metadata: [String: String] = [:], to url: URL) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = entries.keys.sorted()
        for name in names {
            switch entries[name]! {
            case .float32(let t):
                header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]]
                offset += 4 * t.count
            case .int64(let shape, let values):
                header[name] = ["dtype": "I64", "shape": shape, "data_offsets": [offset, offset + 8 * values.count]]
                offset += 8 * values.count
            }
        }
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
        // Written whole to a temporary name, then renamed: a crash never leaves a half file.
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        try out.write(to: tmp)
        if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
        try FileManager.default.moveItem(at: tmp, to: url)
    }

    /// Reads every tensor as Float32, with the file's metadata.
    public static func read(_ url: URL) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let file = url.path
        guard let data = FileManager.default.contents(atPath: file) else {
            throw FormatError(description: "\(file): cannot read file")
        }
        guard data.count >= 8 else { throw FormatError(description: "\(file): too short for a safetensors header") }
        let headerLength = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard headerLength > 0, 8 + headerLength <= data.count else {
            throw FormatError(description: "\(file): header length \(headerLength) does not fit a \(data.count)-byte file (truncated?)")
        }
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any] else {
            throw FormatError(description: "\(file): header is not a JSON object")
        }
        let base = 8 + headerLength
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" { metadata = value as? [String: String] ?? [:]; continue }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw FormatError(description: "\(file): malformed entry '\(name)'")
            }
            let n = shape.reduce(1, *)
            let width: Int
            switch dtype {
            case "F32", "I32": width = 4
            case "F64", "I64": width = 8
            case "F16", "BF16": width = 2
            default: throw FormatError(description: "\(file): tensor '\(name)' has unsupported dtype \(dtype)")
            }
            guard offsets[1] - offsets[0] == n * width, base + offsets[1] <= data.count, offsets[0] >= 0 else {
                throw FormatError(description: "\(file): tensor '\(name)' data \(offsets) does not match shape \(shape) \(dtype) (truncated?)")
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
        return (tensors, metadata)
    }
}
