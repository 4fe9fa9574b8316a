import Foundation

/// Contiguous Float32 memory owned by one object. Freed buffers go back to `BufferPool`, because
/// a training step allocates the same sizes every step and fresh large buffers page-fault.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Uninitialised memory of `count` floats (from the pool when a buffer of that size is free).
    public init(uninitialized count: Int) {
        self.count = count
        self.pointer = BufferPool.shared.take(count)
    }

    /// Zero-filled memory.
    public convenience init(zeros count: Int) {
        self.init(uninitialized: count)
        pointer.update(repeating: 0, count: count)
    }

    deinit { BufferPool.shared.give(pointer, count) }
}

/// Reuses freed buffers by exact size. Bounded: past `limitBytes` of idle memory, buffers are freed.
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()
    private var idle: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var idleFloats = 0
    private var lock = pthread_mutex_t()
    /// Idle memory the pool may keep, in bytes (default 4 GiB).
    public var limitBytes = 4 << 30
    /// Bytes allocated fresh (not reused) so far: a benchmark's steady state should add none.
    public private(set) var freshBytes = 0
    /// Bytes the pool holds now, in use or idle.
    public private(set) var heldBytes = 0

    init() { pthread_mutex_init(&lock, nil) }

    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let n = max(count, 1)
        pthread_mutex_lock(&lock)
        if var list = idle[n], let p = list.popLast() {
            idle[n] = list
            idleFloats -= n
            pthread_mutex_unlock(&lock)
            return p
        }
        freshBytes += n * MemoryLayout<Float>.stride
        heldBytes += n * MemoryLayout<Float>.stride
        pthread_mutex_unlock(&lock)
        // 64-byte alignment for AVX-512 loads.
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, n * MemoryLayout<Float>.stride) == 0, let raw else {
            // No op can go on without its buffer, and a trap prints a backtrace: one line and
            // exit. Checkpoints are written whole and renamed, so the newest good one stays.
            let line = String(format: "maclr: out of memory allocating %.2f GiB (%.2f GiB held by the engine); lower the batch size, clip size or width\n",
                              Double(n * 4) / Double(1 << 30), Double(heldBytes) / Double(1 << 30))
            FileHandle.standardError.write(Data(line.utf8))
            exit(1)
        }
        return raw.bindMemory(to: Float.self, capacity: n)
    }

    func give(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        let n = max(count, 1)
        pthread_mutex_lock(&lock)
        if (idleFloats + n) * 4 <= limitBytes {
            idle[n, default: []].append(p)
            idleFloats += n
            pthread_mutex_unlock(&lock)
            return
        }
        heldBytes -= n * 4
        pthread_mutex_unlock(&lock)
        free(p)
    }

    /// Frees every idle buffer.
    public func drain() {
        pthread_mutex_lock(&lock)
        for (_, list) in idle { for p in list { free(p) } }
        heldBytes -= idleFloats * 4
        idle = [:]
        idleFloats = 0
        pthread_mutex_unlock(&lock)
    }

    public var idleBytes: Int {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        return idleFloats * 4
    }
}
