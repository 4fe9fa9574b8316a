import Foundation
import Tensor
import XCTest

/// Fast kernels against slow, obviously-correct loops.
final class ForwardReferenceTests: XCTestCase {
    /// Direct convolution, channels-last, seven nested loops.
    func naiveConv(_ x: Tensor, _ w: Tensor, stride s: [Int], padding p: [Int]) -> [Float] {
        let (n, t, h, wd, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        let (o, kt, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let ot = (t + 2 * p[0] - kt) / s[0] + 1, oh = (h + 2 * p[1] - kh) / s[1] + 1, ow = (wd + 2 * p[2] - kw) / s[2] + 1
        var out = [Float](repeating: 0, count: n * ot * oh * ow * o)
        for b in 0..<n { for i in 0..<ot { for j in 0..<oh { for l in 0..<ow { for q in 0..<o {
            var acc: Float = 0
            for a in 0..<kt { for bb in 0..<kh { for cc in 0..<kw {
                let ti = i * s[0] - p[0] + a, hi = j * s[1] - p[1] + bb, wi = l * s[2] - p[2] + cc
                guard ti >= 0, ti < t, hi >= 0, hi < h, wi >= 0, wi < wd else { continue }
                for ch in 0..<c {
                    acc += x.data[(((b * t + ti) * h + hi) * wd + wi) * c + ch] * w.data[(((q * kt + a) * kh + bb) * kw + cc) * c + ch]
                }
            }}}
            out[(((b * ot + i) * oh + j) * ow + l) * o + q] = acc
        }}}}}
        return out
    }

    func testConvMatchesDirectLoops() {
        let cases: [([Int], [Int], [Int], [Int])] = [
            ([2, 5, 9, 9, 3], [3, 3, 3], [1, 2, 2], [1, 1, 1]),
            ([1, 4, 8, 8, 5], [1, 7, 7], [1, 2, 2], [0, 3, 3]),
            ([3, 6, 4, 4, 6], [3, 1, 1], [2, 1, 1], [1, 0, 0]),
            ([2, 3, 4, 4, 8], [1, 1, 1], [1, 1, 1], [0, 0, 0]),
            // fewer rows than 8 x 7 output channels (the whole-matrix path) with temporal taps in
            // the padding: one frame, two, and stride 2 over three
            ([2, 1, 4, 4, 6], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
            ([2, 2, 3, 3, 5], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
            ([2, 3, 3, 3, 4], [3, 3, 3], [2, 2, 2], [1, 1, 1]),
            // temporal-only at stride 1, tall enough for the im2col-free path (at least 256
            // output positions per sample): kT 3 and 5, padded and not
            ([2, 4, 8, 8, 3], [3, 1, 1], [1, 1, 1], [1, 0, 0]),
            ([1, 6, 8, 8, 2], [5, 1, 1], [1, 1, 1], [2, 0, 0]),
            ([2, 6, 8, 8, 2], [3, 1, 1], [1, 1, 1], [0, 0, 0]),
        ]
        for (i, (shape, k, s, p)) in cases.enumerated() {
            let x = randomTensor(shape, seed: UInt64(i)), w = randomTensor([7] + k + [shape[4]], seed: UInt64(50 + i))
            assertClose(conv3d(x, w, stride: s, padding: p).toArray(), naiveConv(x, w, stride: s, padding: p), tolerance: 1e-5, "case \(i)")
        }
    }

    /// Products large enough to be split across threads (by C's rows when tall, by its columns
    /// when wide), every transpose, against direct loops; odd extents (65 = 2 x 32 + 1, 97 over
    /// 3 threads) whose last row or column a floor-sized split would drop; products of 2^26
    /// multiply-adds or more, split into two blocks per thread (260 = 3 x 80 + 20).
    func testSplitSgemmMatchesDirectLoops() {
        let saved = Engine.options
        defer { Engine.options = saved }
        for (threads, m, n, k) in [(2, 300, 40, 200), (2, 40, 300, 200), (2, 65, 64, 600), (2, 64, 65, 600), (3, 97, 64, 400),
                                   (2, 260, 130, 2000), (2, 130, 260, 2000)] {
            Engine.options.threads = threads
            let large = m * n * k >= 1 << 26
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] where !large || ta == tb {
                let a = randomTensor(ta ? [k, m] : [m, k], seed: 60), b = randomTensor(tb ? [n, k] : [k, n], seed: 61)
                let c = matmul(a, b, transposeA: ta, transposeB: tb).toArray()
                var expected = [Float](repeating: 0, count: m * n)
                for i in 0..<m { for j in 0..<n {
                    var acc: Float = 0
                    for l in 0..<k { acc += (ta ? a.data[l * m + i] : a.data[i * k + l]) * (tb ? b.data[j * k + l] : b.data[l * n + j]) }
                    expected[i * n + j] = acc
                }}
                assertClose(c, expected, tolerance: 1e-4, "\(threads) threads, \(m)x\(n)x\(k) transA \(ta) transB \(tb)")
            }
        }
    }

    /// Our packed GEMM against direct loops: every transpose, sizes off the 12 x 32 tile and the
    /// 256-deep slice (and below one tile), 16-column panels, padded leading dimensions, alpha
    /// and beta.
    func testPackedGEMMMatchesDirectLoops() {
        var seed: UInt64 = 70
        for (m, n, k) in [(25, 70, 300), (12, 32, 256), (5, 3, 7), (130, 33, 600), (1, 1, 1), (24, 16, 40), (25, 48, 300)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (alpha, beta) in [(Float(1), Float(0)), (1, 1), (0.5, 0.25)] {
                    seed += 1
                    // Each matrix stored with 3 spare columns, so leading dimensions exceed the widths.
                    let (ra, ca) = ta ? (k, m) : (m, k), (rb, cb) = tb ? (n, k) : (k, n)
                    let lda = ca + 3, ldb = cb + 3, ldc = n + 3
                    let a = randomTensor([ra, lda], seed: seed), b = randomTensor([rb, ldb], seed: seed + 100)
                    let c = randomTensor([m, ldc], seed: seed + 200)
                    var expected = c.toArray()
                    for i in 0..<m { for j in 0..<n {
                        var acc: Float = 0
                        for l in 0..<k { acc += (ta ? a.data[l * lda + i] : a.data[i * lda + l]) * (tb ? b.data[j * ldb + l] : b.data[l * ldb + j]) }
                        expected[i * ldc + j] = alpha * acc + beta * c.data[i * ldc + j]
                    }}
                    PackedGEMM.sgemm(ta, tb, m, n, k, alpha, a.data, lda, b.data, ldb, beta, c.data, ldc)
                    assertClose(c.toArray(), expected, tolerance: 1e-4, "\(m)x\(n)x\(k) transA \(ta) transB \(tb) alpha \(alpha) beta \(beta)")
                }
            }
        }
    }

    /// `multiply` over a depth range (A zero outside it) gives C bit for bit as over the whole
    /// depth, and over a column range computes those columns bit for bit; with nothing live and
    /// no accumulation, C is zeroed.
    func testPackedMultiplySkipsDeadDepthAndColumnsBitForBit() {
        for transA in [false, true] {
            let (m, n, k) = (30, 96, 700)
            let live = 250..<610, wanted = 40..<70
            let a = randomTensor([m, k], seed: 31)
            // A's columns outside `live` zero (A^T's rows when transposed)
            for i in 0..<m { for p in 0..<k where !live.contains(p) { a.data[transA ? p * m + i : i * k + p] = 0 } }
            let b = PackedGEMM.PackedB(false, randomTensor([k, n], seed: 32).data, n, k: k, n: n)
            let lda = transA ? m : k
            let whole = randomTensor([m, n], seed: 33), skipped = randomTensor([m, n], seed: 33)
            PackedGEMM.multiply(transA, m, 1, a.data, lda, b, accumulate: false, whole.data, n)
            PackedGEMM.multiply(transA, m, 1, a.data, lda, b, depth: live, accumulate: false, skipped.data, n)
            XCTAssertTrue(whole.toArray() == skipped.toArray(), "transA \(transA): depth range")
            let columns = randomTensor([m, n], seed: 34)
            PackedGEMM.multiply(transA, m, 1, a.data, lda, b, depth: live, columns: wanted, accumulate: false, columns.data, n)
            for i in 0..<m { for j in wanted {
                XCTAssertEqual(columns.data[i * n + j].bitPattern, whole.data[i * n + j].bitPattern, "transA \(transA): [\(i), \(j)]")
            } }
            let nothing = randomTensor([m, n], seed: 35)
            PackedGEMM.multiply(transA, m, 1, a.data, lda, b, depth: 0..<0, accumulate: false, nothing.data, n)
            XCTAssertEqual(nothing.toArray(), [Float](repeating: 0, count: m * n))
        }
    }

    /// The block-by-block im2col convs (`EngineOptions.blockedConvs`) and the implicit ones
    /// (`EngineOptions.implicitConvs`) against the whole-matrix ones: output,
    /// input gradient and weight gradient, with rows spanning several blocks and both threads,
    /// padding, strides, a 7x7 stem-like kernel, and a temporal conv. Both paths are checked whichever is the
    /// default on this CPU.
    func testFusedIm2colConvsMatchTheWholeMatrixOnes() {
        let saved = Engine.options
        defer { Engine.options = saved }
        // (input, kernel, stride, padding, output channels): rows >= 8 x channels, so fused applies.
        let cases: [([Int], [Int], [Int], [Int], Int)] = [
            ([2, 3, 9, 9, 5], [3, 3, 3], [1, 1, 1], [1, 1, 1], 6),
            ([2, 4, 12, 12, 3], [1, 3, 3], [1, 2, 2], [0, 1, 1], 7),
            ([3, 2, 10, 10, 2], [1, 7, 7], [1, 2, 2], [0, 3, 3], 4),
            ([2, 4, 8, 8, 33], [3, 3, 3], [1, 1, 1], [1, 1, 1], 40),
            // temporal-only: the per-tap forward on the packed GEMM, and (fewer output than input
            // channels) the per-tap weight gradient too
            ([3, 4, 8, 8, 3], [3, 1, 1], [1, 1, 1], [1, 0, 0], 5),
            ([3, 4, 8, 8, 6], [3, 1, 1], [1, 1, 1], [1, 0, 0], 4),
            // the quickstart's narrow layers: 36 = 32 + 4 and 57 = 32 + 16 + 9 output channels
            // (edge columns), 11 from 3 channels through a 7x7 stem, rows not a multiple of a tile
            ([2, 3, 9, 9, 16], [1, 3, 3], [1, 1, 1], [0, 1, 1], 36),
            ([4, 3, 16, 16, 8], [1, 3, 3], [1, 2, 2], [0, 1, 1], 57),
            ([2, 2, 13, 13, 3], [1, 7, 7], [1, 2, 2], [0, 3, 3], 11),
            // the implicit weight gradient: 16 and 48 output channels; runs of 24 and of 15
            // values (the last 12-value tile overlapping the one before)
            ([2, 3, 10, 10, 8], [1, 3, 3], [1, 1, 1], [0, 1, 1], 16),
            ([4, 4, 10, 10, 5], [1, 3, 3], [1, 2, 2], [0, 1, 1], 48),
            ([8, 4, 14, 14, 230], [3, 1, 1], [1, 1, 1], [1, 0, 0], 128),
            ([8, 4, 14, 14, 144], [3, 1, 1], [1, 1, 1], [1, 0, 0], 64),
            ([8, 4, 14, 14, 64], [1, 3, 3], [1, 1, 1], [0, 1, 1], 144),
            ([8, 4, 7, 7, 115], [3, 1, 1], [2, 1, 1], [1, 0, 0], 64),
            ([8, 4, 14, 14, 32], [1, 3, 3], [1, 2, 2], [0, 1, 1], 115),
            // temporal taps in the padding skipped: one frame (only the centre tap reads the
            // clip), two frames of 64 rows (blocks straddle them), stride 2 over time, and the
            // implicit forward and weight gradient (runs of 72 values)
            ([8, 1, 4, 4, 40], [3, 3, 3], [1, 1, 1], [1, 1, 1], 16),
            ([4, 2, 8, 8, 33], [3, 3, 3], [1, 1, 1], [1, 1, 1], 24),
            ([2, 4, 8, 8, 20], [3, 3, 3], [2, 2, 2], [1, 1, 1], 16),
            ([4, 2, 8, 8, 24], [3, 3, 3], [1, 1, 1], [1, 1, 1], 32),
        ]
        for (i, (shape, k, s, p, o)) in cases.enumerated() {
            var results: [[[Float]]] = []
            // whole im2col matrix (the reference), blocked im2col, implicit forward, and what an
            // AVX2 build runs (blocked im2col on OpenBLAS, Winograd, 8-wide stems)
            for options in [EngineOptions.reference(threads: saved.threads), EngineOptions(threads: saved.threads, blockedConvs: true, implicitConvs: false),
                            EngineOptions(threads: saved.threads, blockedConvs: true, implicitConvs: true), .avx2(threads: saved.threads)] {
                Engine.options = options
                let x = randomTensor(shape, seed: UInt64(80 + i)), w = randomTensor([o] + k + [shape[4]], seed: UInt64(90 + i), std: 0.3)
                x.requiresGrad = true; w.requiresGrad = true
                let y = conv3d(x, w, stride: s, padding: p)
                let probe = randomTensor(y.shape, seed: UInt64(100 + i))
                (y * probe).sum().backward()
                results.append([y.toArray(), x.grad!.toArray(), w.grad!.toArray()])
            }
            for path in 1...3 {
                for (j, name) in ["output", "input gradient", "weight gradient"].enumerated() {
                    assertClose(results[path][j], results[0][j], tolerance: 1e-5, "case \(i) path \(path) \(name)")
                }
            }
        }
    }

    /// Threads claim grains of work in whatever order they get to them (`parallelClaims`), so
    /// the weight gradients' and batch norm's partial sums are kept per grain, not per thread:
    /// the same inputs give bit-identical results run after run (the recipe-and-seed promise).
    func testClaimedReductionsAreBitIdenticalRunToRun() {
        let saved = Engine.options
        defer { Engine.options = saved }
        let cases: [([Int], [Int], [Int], Int)] = [
            ([8, 4, 14, 14, 144], [3, 1, 1], [1, 0, 0], 64),  // fused temporal weight gradient
            ([8, 4, 14, 14, 64], [1, 3, 3], [0, 1, 1], 144),  // implicit (or blocked) spatial
            ([4, 4, 10, 10, 20], [3, 3, 3], [1, 1, 1], 24),   // blocked 3x3x3
        ]
        for (i, (shape, k, p, o)) in cases.enumerated() {
            for (implicit, options) in [("blocked", EngineOptions(threads: saved.threads, blockedConvs: true, implicitConvs: false)),
                                        ("implicit", EngineOptions(threads: saved.threads, blockedConvs: true, implicitConvs: true)),
                                        ("AVX2's paths", .avx2(threads: saved.threads))] {
                Engine.options = options
                var first: [[Float]]?
                for run in 0..<4 {
                    let x = randomTensor(shape, seed: UInt64(200 + i)), w = randomTensor([o] + k + [shape[4]], seed: UInt64(210 + i), std: 0.3)
                    let gamma = randomTensor([o], seed: 7), beta = randomTensor([o], seed: 8)
                    x.requiresGrad = true; w.requiresGrad = true; gamma.requiresGrad = true
                    let y = batchNorm(conv3d(x, w, stride: [1, 1, 1], padding: p), gamma: gamma, beta: beta,
                                      runningMean: Tensor.zeros([o]), runningVar: Tensor.ones([o]), training: true, relu: true)
                    (y * randomTensor(y.shape, seed: UInt64(220 + i))).sum().backward()
                    let results = [y.toArray(), x.grad!.toArray(), w.grad!.toArray(), gamma.grad!.toArray()]
                    if let first {
                        for (j, name) in ["output", "input gradient", "weight gradient", "gamma gradient"].enumerated() {
                            XCTAssertTrue(results[j] == first[j], "case \(i) \(implicit): run \(run)'s \(name) differs from run 0's")
                        }
                    } else {
                        first = results
                    }
                }
            }
        }
    }

    /// Eval-mode batch norm with nothing to differentiate runs as one fused pass; it gives the
    /// same values, bit for bit, as the differentiable composite (multiply, add, ReLU) that runs
    /// when a gradient is recorded. 40 channels: a vector body and a scalar tail.
    func testEvalBatchNormFusedPassMatchesTheComposite() {
        let x = randomTensor([3, 4, 5, 40], seed: 41, std: 2)
        let gamma = randomTensor([40], seed: 42), beta = randomTensor([40], seed: 43)
        let rm = randomTensor([40], seed: 44), rv = randomTensor([40], seed: 45) * randomTensor([40], seed: 45) + 0.5
        for relu in [false, true] {
            let fused = noGrad { batchNorm(x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, training: false, relu: relu) }
            let tracked = Tensor(shape: x.shape, data: x.toArray(), requiresGrad: true)
            let composite = batchNorm(tracked, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, training: false, relu: relu)
            XCTAssertNotNil(composite.node, "the composite path records a graph")
            XCTAssertTrue(fused.toArray() == composite.toArray(), "relu \(relu)")
            if relu { XCTAssertTrue(fused.toArray().contains(0) && fused.toArray().allSatisfy { $0 >= 0 }) }
        }
    }

    func testBatchNormStatisticsAndRunningUpdate() {
        let x = randomTensor([4, 3, 5], seed: 3, std: 2) + 1.5
        let gamma = Tensor(shape: [5], data: [1, 2, 0.5, 1, 3]), beta = Tensor(shape: [5], data: [0, 1, -1, 0.5, 0])
        let rm = Tensor.zeros([5]), rv = Tensor.ones([5])
        let y = batchNorm(x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, training: true, momentum: 0.1)
        let m = 12
        for c in 0..<5 {
            let column = (0..<m).map { Double(x.data[$0 * 5 + c]) }
            let mean = column.reduce(0, +) / Double(m)
            let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(m)
            for r in 0..<m {
                let expected = (column[r] - mean) / (variance + 1e-5).squareRoot() * Double(gamma.data[c]) + Double(beta.data[c])
                XCTAssertEqual(Double(y.data[r * 5 + c]), expected, accuracy: 1e-4)
            }
            XCTAssertEqual(Double(rm.data[c]), 0.1 * mean, accuracy: 1e-5)
            XCTAssertEqual(Double(rv.data[c]), 0.9 + 0.1 * variance * Double(m) / Double(m - 1), accuracy: 1e-4)
        }
    }

    func testReductionsAndShapesByHand() {
        let x = Tensor(shape: [2, 3], data: [1, 5, 3, -2, 0, 4])
        XCTAssertEqual(x.sum(axes: [1]).toArray(), [9, 2])
        XCTAssertEqual(x.max(axes: [0]).toArray(), [1, 5, 4])
        XCTAssertEqual(x.mean().item(), 11.0 / 6.0, accuracy: 1e-6)
        XCTAssertEqual(x.permute([1, 0]).toArray(), [1, -2, 5, 0, 3, 4])
        XCTAssertEqual(x.slice(axis: 1, 1..<3).toArray(), [5, 3, 0, 4])
        XCTAssertEqual(concat([x, x.slice(axis: 0, 0..<1)], axis: 0).toArray(), [1, 5, 3, -2, 0, 4, 1, 5, 3])
        XCTAssertEqual(x.logSumExp(axes: [1]).toArray()[0], Float(Foundation.log(exp(1.0) + exp(5.0) + exp(3.0))), accuracy: 1e-5)
        let ce = softmaxCrossEntropy(x, labels: [1, 2]).item()
        let expected = ((Foundation.log(exp(1.0) + exp(5.0) + exp(3.0)) - 5) + (Foundation.log(exp(-2.0) + exp(0.0) + exp(4.0)) - 4)) / 2
        XCTAssertEqual(Double(ce), expected, accuracy: 1e-5)
        let n = Tensor(shape: [1, 2], data: [3, 4]).l2Normalized().toArray()
        XCTAssertEqual(n[0], 0.6, accuracy: 1e-6); XCTAssertEqual(n[1], 0.8, accuracy: 1e-6)
    }

    func testMaxPoolByHand() {
        // one 4x4 frame, one channel; 2x2 windows stride 2
        let x = Tensor(shape: [1, 1, 4, 4, 1], data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])
        XCTAssertEqual(maxPool3d(x, kernel: [1, 2, 2], stride: [1, 2, 2]).toArray(), [6, 8, 14, 16])
        XCTAssertEqual(maxPool3d(x, kernel: [1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1]).toArray(), [6, 8, 14, 16])
    }

    /// Every channel count's mix of 16-, 8-, 4-, 2- and 1-channel steps against a plain loop over
    /// the window, ties included (few distinct values): the same maxima, and the gradient routed to
    /// the same (first) maximum.
    func testMaxPoolMatchesAPlainLoopForEveryChannelCount() {
        for c in [1, 2, 3, 5, 8, 11, 16, 23, 31, 37] {
            let shape = [2, 3, 5, 6, c]
            let x = Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { Float(($0 * 7919) % 5) })
            x.requiresGrad = true
            let y = maxPool3d(x, kernel: [2, 3, 3], stride: [1, 2, 2], padding: [1, 1, 1])
            let (ot, oh, ow) = (4, 3, 3)
            XCTAssertEqual(y.shape, [2, ot, oh, ow, c])
            var expected = [Float](), routed = [Float](repeating: 0, count: x.count)
            let xs = x.toArray()
            for n in 0..<2 { for i in 0..<ot { for j in 0..<oh { for l in 0..<ow { for q in 0..<c {
                var best = -Float.infinity, at = -1
                for a in 0..<2 { for b in 0..<3 { for d in 0..<3 {
                    let (ti, hi, wi) = (i - 1 + a, 2 * j - 1 + b, 2 * l - 1 + d)
                    guard (0..<3).contains(ti), (0..<5).contains(hi), (0..<6).contains(wi) else { continue }
                    let index = (((n * 3 + ti) * 5 + hi) * 6 + wi) * c + q
                    if xs[index] > best || at < 0 { best = xs[index]; at = index }
                } } }
                expected.append(best); routed[at] += 1
            } } } } }
            XCTAssertEqual(y.toArray(), expected, "\(c) channels")
            y.sum().backward()
            XCTAssertEqual(x.grad!.toArray(), routed, "\(c) channels: gradient to the first maximum")
        }
    }

    func testNoGradRecordsNothing() {
        let w = randomTensor([3], seed: 1); w.requiresGrad = true
        let y = noGrad { (w * w).sum() }
        XCTAssertNil(y.node)
        XCTAssertNotNil((w * w).sum().node)
    }

    func testGradientsAccumulateAcrossBackwardCalls() {
        let w = Tensor(shape: [2], data: [1, 2], requiresGrad: true)
        (w * w).sum().backward()
        (w * 3).sum().backward()
        XCTAssertEqual(w.grad!.toArray(), [2 + 3, 4 + 3])
    }
}
