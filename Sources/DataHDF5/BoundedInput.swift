import Foundation

/// Text inputs of a preparation or a dataset read with bounds checked before they are parsed:
/// the video lists, split files and annotation JSONs users bring, and a dataset's manifest.
/// Each refusal is one line naming the file and the bound.
public enum BoundedInput {
    /// Bytes of one list, split file, annotation file or manifest: Kinetics-700's annotation
    /// CSVs and Something-Something's JSONs are tens of MB.
    public static let fileBytes = 256 << 20
    /// Nested arrays and objects of a JSON file: annotations and manifests need a handful.
    public static let jsonDepth = 64

    /// The bytes of `url`, its size checked before it is read; `what` names the kind of file.
    public static func data(_ url: URL, what: String) throws -> Data {
        if let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int, size > fileBytes {
            throw PrepareError("\(url.path): \(size) bytes, more than the \(fileBytes) a \(what) may have")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else { throw PrepareError("\(url.path): cannot read \(what)") }
        return data
    }

    /// The text of `url` (UTF-8), bounded as `data`.
    public static func text(_ url: URL, what: String) throws -> String {
        guard let text = String(data: try data(url, what: what), encoding: .utf8) else {
            throw PrepareError("\(url.path): \(what) is not UTF-8 text")
        }
        return text
    }

    /// The JSON value of `url`, its size and nesting depth checked before it is parsed.
    public static func json(_ url: URL, what: String) throws -> Any {
        let bytes = try data(url, what: what)
        try checkDepth(bytes, source: url.path)
        guard let value = try? JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed]) else {
            throw PrepareError("\(url.path): \(what) is not valid JSON")
        }
        return value
    }

    /// Refuses JSON nested deeper than `jsonDepth` (counted on the text, outside strings).
    public static func checkDepth(_ bytes: Data, source: String) throws {
        var depth = 0, deepest = 0
        var inString = false, escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
                if deepest > jsonDepth {
                    throw PrepareError("\(source): JSON nested more than \(jsonDepth) levels deep")
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
    }
}
