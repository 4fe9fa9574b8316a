/// Median filter with a square window of `size` x `size` (odd), clamped at the borders: TV-L1
/// filters its flow with one after every warp. The 5 x 5 window runs a selection network on 16
/// pixels at once; other sizes sort each window (`medianBySorting`, the reference).
func median(_ a: [Float], _ w: Int, _ h: Int, _ size: Int) -> [Float] {
    size == 5 ? medianOf5x5(a, w, h) : medianBySorting(a, w, h, size)
}

/// The reference: each window gathered and sorted.
func medianBySorting(_ a: [Float], _ w: Int, _ h: Int, _ size: Int) -> [Float] {
    let r = size / 2
    var out = a
    var window = [Float](repeating: 0, count: size * size)
    for y in 0..<h { for x in 0..<w {
        var c = 0
        for dy in -r...r { for dx in -r...r {
            window[c] = a[min(max(y + dy, 0), h - 1) * w + min(max(x + dx, 0), w - 1)]; c += 1
        }}
        window.sort()
        out[y * w + x] = window[c / 2]
    }}
    return out
}

/// Comparators (lo, hi) of Batcher's odd-even merge sort of 32 wires, keeping only those the
/// wire of rank 15 depends on. With wires 25...27 at -infinity and 28...31 at +infinity, rank 15
/// of the 32 is rank 12 of the other 25: their median.
let medianOf25Network: [(Int, Int)] = {
    let n = 32
    var comparators: [(Int, Int)] = []
    var p = 1
    while p < n {
        var k = p
        while k >= 1 {
            var j = k % p
            while j + k < n {
                for i in 0..<min(k, n - j - k) where (i + j) / (2 * p) == (i + j + k) / (2 * p) {
                    comparators.append((i + j, i + j + k))
                }
                j += 2 * k
            }
            k /= 2
        }
        p *= 2
    }
    var needed: Set<Int> = [15], kept: [(Int, Int)] = []
    for c in comparators.reversed() where needed.contains(c.0) || needed.contains(c.1) {
        kept.append(c); needed.insert(c.0); needed.insert(c.1)
    }
    return kept.reversed()
}()

/// The 5 x 5 median, 16 pixels of a row at a time: the image padded by its border values, each
/// of the 25 window offsets one 16-wide load, `medianOf25Network` on the vectors.
func medianOf5x5(_ a: [Float], _ w: Int, _ h: Int) -> [Float] {
    let lanes = 16
    let pw = w + 4 + lanes, ph = h + 4
    var padded = [Float](repeating: 0, count: pw * ph)
    for y in 0..<ph { for x in 0..<pw {
        padded[y * pw + x] = a[min(max(y - 2, 0), h - 1) * w + min(max(x - 2, 0), w - 1)]
    }}
    var out = [Float](repeating: 0, count: w * h)
    let network = medianOf25Network
    padded.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            var wires = [SIMD16<Float>](repeating: SIMD16(), count: 32)
            wires.withUnsafeMutableBufferPointer { v in
                for y in 0..<h {
                    var x0 = 0
                    while x0 < w {
                        // the network moves values between wires: the padding is set anew every time
                        for i in 25..<28 { v[i] = SIMD16(repeating: -.infinity) }
                        for i in 28..<32 { v[i] = SIMD16(repeating: .infinity) }
                        for dy in 0..<5 { for dx in 0..<5 {
                            v[dy * 5 + dx] = UnsafeRawPointer(src.baseAddress! + (y + dy) * pw + x0 + dx).loadUnaligned(as: SIMD16<Float>.self)
                        }}
                        for (lo, hi) in network {
                            let a = v[lo], b = v[hi], smaller = b .< a
                            v[lo] = a.replacing(with: b, where: smaller); v[hi] = b.replacing(with: a, where: smaller)
                        }
                        let m = v[15]
                        for l in 0..<min(lanes, w - x0) { dst[y * w + x0 + l] = m[l] }
                        x0 += lanes
                    }
                }
            }
        }
    }
    return out
}
