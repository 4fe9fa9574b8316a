import Foundation
import Tensor

/// `manifest.json` of a dataset folder: what the shards hold and how they were made.
public struct DatasetManifest: Codable, Equatable, Sendable {
    public static let formatName = "maclr-dataset"
    public static let currentVersion = 1

    public struct Shard: Codable, Equatable, Sendable {
        public var file: String
        public var videos: Int
        public var frames: Int
        public var bytes: Int
        /// FNV-1a 64 of the file's bytes, hex.
        public var checksum: String
        public init(file: String, videos: Int, frames: Int, bytes: Int, checksum: String) {
            self.file = file; self.videos = videos; self.frames = frames; self.bytes = bytes; self.checksum = checksum
        }

        /// The entry of a shard written to `folder/file`: its size and checksum read from disk.
        public init(measuring file: String, in folder: URL, videos: Int, frames: Int) throws {
            let path = folder.appendingPathComponent(file).path
            let bytes = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            self.init(file: file, videos: videos, frames: frames, bytes: bytes, checksum: try fileChecksum(path))
        }
    }

    public struct Preparation: Codable, Equatable, Sendable {
        /// "original", "short:N" or "WxH".
        public var size: String
        public var fps: Double?
        public var flowAlgorithm: String
        public var flowBound: Double
        public var videosPerShard: Int
        public init(size: String, fps: Double?, flowAlgorithm: String, flowBound: Double, videosPerShard: Int) {
            self.size = size; self.fps = fps; self.flowAlgorithm = flowAlgorithm; self.flowBound = flowBound; self.videosPerShard = videosPerShard
        }
    }

    public struct FailedVideo: Codable, Equatable, Sendable {
        public var source: String
        public var reason: String
        public init(source: String, reason: String) { self.source = source; self.reason = reason }
    }

    public var format = formatName
    public var version = currentVersion
    public var shards: [Shard] = []
    public var classes: [String] = []
    public var preparation: Preparation
    /// Split name -> video names (e.g. "train", "test").
    public var splits: [String: [String]] = [:]
    public var failed: [FailedVideo] = []
    /// False while `maclr prepare` is still writing shards.
    public var complete = false

    public init(preparation: Preparation) { self.preparation = preparation }

    public var videoCount: Int { shards.reduce(0) { $0 + $1.videos } }
    public var frameCount: Int { shards.reduce(0) { $0 + $1.frames } }

    public static func load(from folder: URL) throws -> DatasetManifest {
        let url = folder.appendingPathComponent("manifest.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw HDF5Error("\(url.path): no manifest (is \(folder.path) a dataset made by maclr prepare?)")
        }
        let data = try BoundedInput.data(url, what: "manifest")
        try BoundedInput.checkDepth(data, source: url.path)
        do {
            let manifest = try JSONDecoder().decode(DatasetManifest.self, from: data)
            // manifests written before checksums have none: nothing to verify
            if let recorded = try JSONDecoder().decode(Checksummed.self, from: data).checksum, recorded != (try manifest.contentChecksum()) {
                throw HDF5Error("\(url.path): its checksum does not match its content (damaged, or edited by hand): prepare the dataset again, or delete the \"checksum\" line to accept an edit")
            }
            return manifest
        } catch let error as HDF5Error {
            throw error
        } catch let DecodingError.keyNotFound(key, _) {
            throw HDF5Error("\(url.path): missing key '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context) {
            throw HDF5Error("\(url.path): wrong type at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'")
        } catch {
            throw HDF5Error("\(url.path): not a valid manifest (\(error))")
        }
    }

    /// Written to a temporary name, synced and renamed: readers never see half a manifest, nor a
    /// crash a manifest without its contents.
    /// The manifest carries the checksum of its own content (`contentChecksum`), verified on load.
    public func save(to folder: URL) throws {
        let url = folder.appendingPathComponent("manifest.json")
        try DurableFiles.write(try Self.encoder.encode(Checksummed(manifest: self, checksum: try contentChecksum())), to: url)
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }

    /// FNV-1a 64 of the manifest's JSON without its checksum, hex.
    func contentChecksum() throws -> String {
        let bytes = try Self.encoder.encode(self)
        return String(format: "%016llx", bytes.withUnsafeBytes { fnv1a64($0) })
    }

    /// manifest.json as written: the manifest's keys and "checksum".
    struct Checksummed: Codable {
        var manifest: DatasetManifest?
        var checksum: String?
        enum Key: String, CodingKey { case checksum }
        init(manifest: DatasetManifest, checksum: String) { self.manifest = manifest; self.checksum = checksum }
        init(from decoder: Decoder) throws {
            checksum = try decoder.container(keyedBy: Key.self).decodeIfPresent(String.self, forKey: .checksum)
        }
        func encode(to encoder: Encoder) throws {
            try manifest?.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encodeIfPresent(checksum, forKey: .checksum)
        }
    }
}

extension DatasetManifest.Shard {
    /// The file at `path` against this entry's size: nil when they agree, else the fault.
    public func sizeFault(at path: String) -> String? {
        guard let actual = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int else { return "\(path): missing" }
        return actual == bytes ? nil : "\(path): \(actual) bytes, the manifest says \(bytes) (truncated or rewritten)"
    }

    /// The file at `path` against this entry's checksum (a full read): nil when they agree.
    public func checksumFault(at path: String) throws -> String? {
        let actual = try fileChecksum(path)
        return actual == checksum ? nil : "\(path): checksum \(actual) does not match the manifest's \(checksum)"
    }
}

/// FNV-1a 64 of a file, streamed in 4 MiB blocks.
public func fileChecksum(_ path: String) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { throw HDF5Error("\(path): cannot read for checksum") }
    defer { try? handle.close() }
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    while true {
        let block = handle.readData(ofLength: 4 << 20)
        if block.isEmpty { break }
        hash = block.withUnsafeBytes { fnv1a64($0, continuing: hash) }
    }
    return String(format: "%016llx", hash)
}

/// Shards checked against the manifest before a dataset is used: the size always, the checksum
/// once per version of the file. `.verified.json` in the dataset folder remembers (size,
/// modification time) of shards whose checksum matched, so a dataset is hashed once, not at
/// every run; a read-only folder is simply hashed each time.
struct ShardVerification {
    let folder: URL
    struct Stamp: Codable, Equatable { var bytes: Int; var modified: Double; var checksum: String }
    var stampURL: URL { folder.appendingPathComponent(".verified.json") }

    func verify(_ shards: [DatasetManifest.Shard]) throws {
        var stamps = (try? JSONDecoder().decode([String: Stamp].self, from: Data(contentsOf: stampURL))) ?? [:]
        var changed = false
        for entry in shards {
            let path = folder.appendingPathComponent(entry.file).path
            if let fault = entry.sizeFault(at: path) { throw HDF5Error(fault) }
            let modified = ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            let stamp = Stamp(bytes: entry.bytes, modified: modified, checksum: entry.checksum)
            if stamps[entry.file] == stamp || entry.checksum == "not-computed" { continue }
            if let fault = try entry.checksumFault(at: path) {
                throw HDF5Error(fault + ": the shard is corrupt (maclr inspect lists every fault)")
            }
            stamps[entry.file] = stamp
            changed = true
        }
        if changed, let data = try? JSONEncoder().encode(stamps) { try? DurableFiles.write(data, to: stampURL) }
    }
}
