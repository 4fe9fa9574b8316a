import CHDF5
import Foundation

/// An HDF5 failure naming the file and what was being done.
public struct HDF5Error: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The HDF5 library is not thread-safe (Debian builds it without the thread-safe option): every
/// call goes through this one lock.
enum HDF5 {
    static let lock = NSRecursiveLock()
    static let initialized: Void = {
        // We report errors ourselves, naming the file; HDF5's own stack dumps are noise.
        H5Eset_auto2(maclr_H5E_DEFAULT(), nil, nil)
        // HDF5 shuts itself down at exit (its handler, registered by the call above, runs after
        // this one); a loader thread still reading or closing a handle would then find it gone
        // and print its diagnostics over our one error line. From exit on, the lock stays taken.
        atexit { HDF5.lock.lock() }
    }()

    @discardableResult
    static func locked<R>(_ body: () throws -> R) rethrows -> R {
        _ = initialized
        lock.lock(); defer { lock.unlock() }
        return try body()
    }
}

/// An open HDF5 file (closed on deinit).
final class H5File {
    let id: hid_t
    let path: String

    /// Creates (truncating) a file.
    init(creating path: String) throws {
        self.path = path
        id = HDF5.locked { H5Fcreate(path, maclr_H5F_ACC_TRUNC(), maclr_H5P_DEFAULT(), maclr_H5P_DEFAULT()) }
        guard id >= 0 else { throw HDF5Error("\(path): cannot create HDF5 file") }
    }

    init(reading path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { throw HDF5Error("\(path): no such file") }
        id = HDF5.locked { H5Fopen(path, maclr_H5F_ACC_RDONLY(), maclr_H5P_DEFAULT()) }
        guard id >= 0 else { throw HDF5Error("\(path): not a readable HDF5 file (truncated or damaged?)") }
    }

    deinit { HDF5.locked { _ = H5Fclose(id) } }

    /// Hands everything HDF5 buffers for this file to the system, so a full disk is an error
    /// here rather than lost silently when the file closes.
    func flush() throws {
        let status = HDF5.locked { H5Fflush(id, H5F_SCOPE_GLOBAL) }
        guard status >= 0 else { throw HDF5Error("\(path): cannot write (\(String(cString: strerror(errno))))") }
    }

    /// Creation properties without modification times: HDF5 stamps objects with the time by
    /// default, which would make two preparations of the same videos differ byte for byte.
    static func untimedProperties(_ kind: hid_t) -> hid_t {
        let p = H5Pcreate(kind)
        H5Pset_obj_track_times(p, false)
        return p
    }

    func createGroup(_ name: String) throws {
        let g = HDF5.locked {
            let props = H5File.untimedProperties(maclr_H5P_GROUP_CREATE())
            defer { H5Pclose(props) }
            return H5Gcreate2(id, name, maclr_H5P_DEFAULT(), props, maclr_H5P_DEFAULT())
        }
        guard g >= 0 else { throw HDF5Error("\(path): cannot create group \(name)") }
        HDF5.locked { _ = H5Gclose(g) }
    }

    func exists(_ name: String) -> Bool {
        HDF5.locked { H5Lexists(id, name, maclr_H5P_DEFAULT()) > 0 }
    }

    func open(_ name: String) throws -> H5Dataset {
        guard exists(name) else { throw HDF5Error("\(path): no dataset \(name)") }
        let d = HDF5.locked { H5Dopen2(id, name, maclr_H5P_DEFAULT()) }
        guard d >= 0 else { throw HDF5Error("\(path): cannot open dataset \(name)") }
        return H5Dataset(id: d, name: name, file: path)
    }

    /// A dataset growable along its first axis: (0, rowShape...), chunked `chunkRows` rows at a time.
    func createExtendible(_ name: String, type: hid_t, rowShape: [Int], chunkRows: Int) throws -> H5Dataset {
        var dims = [hsize_t(0)] + rowShape.map { hsize_t($0) }
        var maxDims = [maclr_H5S_UNLIMITED()] + rowShape.map { hsize_t($0) }
        var chunk = [hsize_t(max(1, chunkRows))] + rowShape.map { hsize_t($0) }
        return try HDF5.locked {
            let space = H5Screate_simple(Int32(dims.count), &dims, &maxDims)
            let props = H5File.untimedProperties(maclr_H5P_DATASET_CREATE())
            H5Pset_chunk(props, Int32(chunk.count), &chunk)
            let d = H5Dcreate2(id, name, type, space, maclr_H5P_DEFAULT(), props, maclr_H5P_DEFAULT())
            H5Pclose(props); H5Sclose(space)
            guard d >= 0 else { throw HDF5Error("\(path): cannot create dataset \(name)") }
            return H5Dataset(id: d, name: name, file: path)
        }
    }

    /// A fixed-size 1-D dataset of `elements` items (default: one per value) written at once.
    func write<T>(_ name: String, type: hid_t, values: [T], elements: Int? = nil) throws {
        var dims = [hsize_t(elements ?? values.count)]
        try HDF5.locked {
            let space = H5Screate_simple(1, &dims, nil)
            let props = H5File.untimedProperties(maclr_H5P_DATASET_CREATE())
            let d = H5Dcreate2(id, name, type, space, maclr_H5P_DEFAULT(), props, maclr_H5P_DEFAULT())
            defer { H5Sclose(space); H5Pclose(props); if d >= 0 { H5Dclose(d) } }
            guard d >= 0 else { throw HDF5Error("\(path): cannot create dataset \(name)") }
            let status = values.withUnsafeBytes { H5Dwrite(d, type, maclr_H5S_ALL(), maclr_H5S_ALL(), maclr_H5P_DEFAULT(), $0.baseAddress) }
            guard status >= 0 else { throw HDF5Error("\(path): cannot write dataset \(name)") }
        }
    }

    /// Strings as a 1-D dataset of fixed-length, NUL-padded UTF-8 (h5py reads them as bytes).
    func writeStrings(_ name: String, _ strings: [String]) throws {
        let width = max(1, strings.map { $0.utf8.count }.max() ?? 1)
        var bytes = [UInt8](repeating: 0, count: width * strings.count)
        for (i, s) in strings.enumerated() { for (j, b) in s.utf8.enumerated() { bytes[i * width + j] = b } }
        let type = try stringType(width)
        defer { HDF5.locked { _ = H5Tclose(type) } }
        try write(name, type: type, values: bytes.isEmpty ? [0] : bytes, elements: strings.count)
    }

    func stringType(_ width: Int) throws -> hid_t {
        HDF5.locked {
            let t = H5Tcopy(maclr_H5T_C_S1())
            H5Tset_size(t, width)
            H5Tset_strpad(t, H5T_STR_NULLPAD)
            H5Tset_cset(t, H5T_CSET_UTF8)
            return t
        }
    }

    func setAttribute(_ name: String, _ value: String) throws {
        let type = try stringType(max(1, value.utf8.count))
        defer { HDF5.locked { _ = H5Tclose(type) } }
        try HDF5.locked {
            let space = H5Screate(H5S_SCALAR)
            let a = H5Acreate2(id, name, type, space, maclr_H5P_DEFAULT(), maclr_H5P_DEFAULT())
            defer { H5Sclose(space); if a >= 0 { H5Aclose(a) } }
            guard a >= 0 else { throw HDF5Error("\(path): cannot write attribute \(name)") }
            var bytes = Array(value.utf8); if bytes.isEmpty { bytes = [0] }
            H5Awrite(a, type, bytes)
        }
    }

    func setAttribute(_ name: String, _ value: Double) throws {
        try scalarAttribute(name, maclr_H5T_NATIVE_DOUBLE(), value)
    }

    func setAttribute(_ name: String, _ value: Int) throws {
        try scalarAttribute(name, maclr_H5T_NATIVE_INT64(), Int64(value))
    }

    private func scalarAttribute<T>(_ name: String, _ type: hid_t, _ value: T) throws {
        try HDF5.locked {
            let space = H5Screate(H5S_SCALAR)
            let a = H5Acreate2(id, name, type, space, maclr_H5P_DEFAULT(), maclr_H5P_DEFAULT())
            defer { H5Sclose(space); if a >= 0 { H5Aclose(a) } }
            guard a >= 0 else { throw HDF5Error("\(path): cannot write attribute \(name)") }
            var v = value
            H5Awrite(a, type, &v)
        }
    }

    func hasAttribute(_ name: String) -> Bool { HDF5.locked { H5Aexists(id, name) > 0 } }

    func stringAttribute(_ name: String) throws -> String {
        try HDF5.locked {
            guard H5Aexists(id, name) > 0 else { throw HDF5Error("\(path): no attribute '\(name)'") }
            let a = H5Aopen(id, name, maclr_H5P_DEFAULT())
            defer { H5Aclose(a) }
            let fileType = H5Aget_type(a)
            defer { H5Tclose(fileType) }
            let size = H5Tget_size(fileType)
            guard H5Tget_class(fileType) == H5T_STRING, H5Tis_variable_str(fileType) <= 0 else {
                throw HDF5Error("\(path): attribute '\(name)' is not a fixed-length string")
            }
            var bytes = [UInt8](repeating: 0, count: size + 1)
            H5Aread(a, fileType, &bytes)
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    func numberAttribute(_ name: String) throws -> Double {
        try HDF5.locked {
            guard H5Aexists(id, name) > 0 else { throw HDF5Error("\(path): no attribute '\(name)'") }
            let a = H5Aopen(id, name, maclr_H5P_DEFAULT())
            defer { H5Aclose(a) }
            var v = 0.0
            guard H5Aread(a, maclr_H5T_NATIVE_DOUBLE(), &v) >= 0 else { throw HDF5Error("\(path): attribute '\(name)' is not a number") }
            return v
        }
    }
}

/// An open dataset (closed on deinit).
final class H5Dataset {
    let id: hid_t
    let name: String
    let file: String

    init(id: hid_t, name: String, file: String) {
        self.id = id; self.name = name; self.file = file
        rawChunkRows = Self.rawChunkRows(id)
    }
    deinit { HDF5.locked { _ = H5Dclose(id) } }

    var shape: [Int] {
        HDF5.locked {
            let space = H5Dget_space(id)
            defer { H5Sclose(space) }
            let rank = Int(H5Sget_simple_extent_ndims(space))
            var dims = [hsize_t](repeating: 0, count: max(rank, 1))
            H5Sget_simple_extent_dims(space, &dims, nil)
            return dims.prefix(rank).map { Int($0) }
        }
    }

    /// Appends `rows` rows (row shape = shape[1...]) from `data`.
    func append(_ data: UnsafeRawPointer, rows: Int, memoryType: hid_t) throws {
        guard rows > 0 else { return }
        var dims = shape.map { hsize_t($0) }
        let start0 = dims[0]
        dims[0] += hsize_t(rows)
        try HDF5.locked {
            guard H5Dset_extent(id, &dims) >= 0 else { throw HDF5Error("\(file): cannot extend \(name)") }
            let fileSpace = H5Dget_space(id)
            var start = [hsize_t](repeating: 0, count: dims.count); start[0] = start0
            var count = dims; count[0] = hsize_t(rows)
            H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &start, nil, &count, nil)
            let memSpace = H5Screate_simple(Int32(count.count), &count, nil)
            defer { H5Sclose(memSpace); H5Sclose(fileSpace) }
            guard H5Dwrite(id, memoryType, memSpace, fileSpace, maclr_H5P_DEFAULT(), data) >= 0 else {
                throw HDF5Error("\(file): cannot write \(rows) rows to \(name)")
            }
        }
    }

    /// Reads `count` rows starting at `start`, every `step`-th row, into `out`.
    func readRows(start: Int, count: Int, step: Int = 1, memoryType: hid_t, into out: UnsafeMutableRawPointer) throws {
        let dims = shape
        guard start >= 0, count > 0, start + (count - 1) * step < dims[0] else {
            throw HDF5Error("\(file): rows \(start)..<\(start + count * step) step \(step) outside \(name) of \(dims[0]) rows")
        }
        try HDF5.locked {
            let fileSpace = H5Dget_space(id)
            var s = [hsize_t](repeating: 0, count: dims.count); s[0] = hsize_t(start)
            var stride = [hsize_t](repeating: 1, count: dims.count); stride[0] = hsize_t(step)
            var c = dims.map { hsize_t($0) }; c[0] = hsize_t(count)
            H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &s, &stride, &c, nil)
            let memSpace = H5Screate_simple(Int32(c.count), &c, nil)
            defer { H5Sclose(memSpace); H5Sclose(fileSpace) }
            guard H5Dread(id, memoryType, memSpace, fileSpace, maclr_H5P_DEFAULT(), out) >= 0 else {
                throw HDF5Error("\(file): cannot read rows \(start)..<\(start + count * step) of \(name) (truncated?)")
            }
        }
    }

    /// Rows per chunk when the dataset is chunked along its first axis and stores its chunks
    /// unfiltered (so a chunk's raw bytes are its rows); nil otherwise. Set at open: the
    /// loader's threads share a dataset.
    let rawChunkRows: Int?

    static func rawChunkRows(_ id: hid_t) -> Int? {
        HDF5.locked {
            let props = H5Dget_create_plist(id)
            defer { H5Pclose(props) }
            guard H5Pget_layout(props) == H5D_CHUNKED, H5Pget_nfilters(props) == 0 else { return nil }
            let rank = Int(H5Pget_chunk(props, 0, nil))
            guard rank > 0 else { return nil }
            var dims = [hsize_t](repeating: 0, count: rank)
            H5Pget_chunk(props, Int32(rank), &dims)
            let space = H5Dget_space(id)
            defer { H5Sclose(space) }
            var shape = [hsize_t](repeating: 0, count: rank)
            H5Sget_simple_extent_dims(space, &shape, nil)
            // Only chunks that hold whole rows: then a row's bytes are contiguous inside its chunk.
            return Array(dims.dropFirst()) == Array(shape.dropFirst()) ? Int(dims[0]) : nil
        }
    }

    /// Reads `count` rows from `start`, every `step`-th, by reading each chunk they touch whole
    /// (H5Dread_chunk: the stored bytes, no datatype conversion) into `chunk` and copying the
    /// wanted rows out of it; the HDF5 lock is held only around each chunk's read. Needs
    /// `rawChunkRows`.
    func readRowsByChunk(start: Int, count: Int, step: Int, rowBytes: Int, chunk: inout [UInt8], into out: UnsafeMutableRawPointer) throws {
        guard let rows = rawChunkRows else { throw HDF5Error("\(file): \(name) is not stored in unfiltered chunks of whole rows") }
        let dims = shape
        guard start >= 0, count > 0, step > 0, start + (count - 1) * step < dims[0] else {
            throw HDF5Error("\(file): rows \(start)..<\(start + count * step) step \(step) outside \(name) of \(dims[0]) rows")
        }
        chunk.resize(to: rows * rowBytes)
        var i = 0
        while i < count {
            let chunkStart = (start + i * step) / rows * rows
            var offset = [hsize_t](repeating: 0, count: dims.count); offset[0] = hsize_t(chunkStart)
            var filters: UInt32 = 0
            let status = chunk.withUnsafeMutableBytes { buf in
                HDF5.locked { H5Dread_chunk(id, maclr_H5P_DEFAULT(), &offset, &filters, buf.baseAddress) }
            }
            guard status >= 0 else { throw HDF5Error("\(file): cannot read the chunk at row \(chunkStart) of \(name) (truncated?)") }
            chunk.withUnsafeBytes { c in
                while i < count, start + i * step < chunkStart + rows {
                    (out + i * rowBytes).copyMemory(from: c.baseAddress! + (start + i * step - chunkStart) * rowBytes, byteCount: rowBytes)
                    i += 1
                }
            }
        }
    }

    /// The whole dataset as values of `T` (1-D numeric tables).
    func readAll<T: Numeric>(_ type: T.Type, memoryType: hid_t) throws -> [T] {
        let n = shape.reduce(1, *)
        var out = [T](repeating: 0, count: n)
        guard n > 0 else { return out }
        try out.withUnsafeMutableBytes { buf in
            try HDF5.locked {
                guard H5Dread(id, memoryType, maclr_H5S_ALL(), maclr_H5S_ALL(), maclr_H5P_DEFAULT(), buf.baseAddress) >= 0 else {
                    throw HDF5Error("\(file): cannot read \(name)")
                }
            }
        }
        return out
    }

    /// A 1-D dataset of fixed-length strings.
    func readStrings() throws -> [String] {
        try HDF5.locked {
            let type = H5Dget_type(id)
            defer { H5Tclose(type) }
            guard H5Tget_class(type) == H5T_STRING, H5Tis_variable_str(type) <= 0 else {
                throw HDF5Error("\(file): \(name) is not a fixed-length string dataset")
            }
            let width = H5Tget_size(type)
            let n = shape.reduce(1, *)
            var bytes = [UInt8](repeating: 0, count: max(1, width * n))
            guard H5Dread(id, type, maclr_H5S_ALL(), maclr_H5S_ALL(), maclr_H5P_DEFAULT(), &bytes) >= 0 else {
                throw HDF5Error("\(file): cannot read \(name)")
            }
            return (0..<n).map { i in String(decoding: bytes[(i * width)..<((i + 1) * width)].prefix { $0 != 0 }, as: UTF8.self) }
        }
    }
}
