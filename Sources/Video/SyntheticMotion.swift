import Foundation
import Tensor

/// Labelled synthetic videos whose class is decided by motion alone: several foreground objects
/// of random shape, colour and texture move by the class's pattern over a background that moves
/// on its own: drifting gratings, or windows of real videos (camera motion and all).
/// Appearance is drawn independently of the class, except with scene bias, where some or all
/// of the training split's backgrounds carry a class-specific hue.
public struct SyntheticMotion: Sendable {
    /// The motion patterns, one per class, in order.
    public static let patterns = ["right", "left", "up", "down", "rotate_cw", "rotate_ccw", "zoom_in", "zoom_out",
                                  "oscillate_horizontal", "oscillate_vertical"]

    public var classes = 8
    public var size = 64
    public var frames = 32
    public var fps = 16
    public var objectsPerVideo = 3
    /// The background's drift, at most this many pixels per frame in x and y: apparent motion
    /// that is not the class's, much slower than the objects' so the class stays the dominant
    /// motion.
    public var backgroundDrift: Float = 0.3
    /// Multiplies every object's speed (translation, rotation, zoom). Objects slower than a pixel
    /// per frame were not learnable at the quickstart's budget, neither by our supervised recipe
    /// nor by a PyTorch mirror of it (benchmarks/torch_mirror.py).
    public var speed: Float = 1
    /// The fraction of each class's training videos whose background carries the class's hue
    /// (scene bias): 0 none, 1 all; test videos never do.
    public var sceneBiasFraction: Double = 0
    /// Every training background carries its class's hue.
    public var sceneBias: Bool {
        get { sceneBiasFraction >= 1 }
        set { sceneBiasFraction = newValue ? 1 : 0 }
    }
    /// Real footage behind the objects, each clip (F, size, size, 3) as `loadBackgrounds` makes
    /// them: a video's background is a window of one of them. Empty: drifting gratings.
    public var backgrounds: [DecodedVideo] = []

    public init() {}

    /// Whether the video of `seed` in the given split has a class-hued background. Drawn from
    /// its own generator, so the rest of the video is the same with or without scene bias.
    public func hasBiasedBackground(seed: UInt64, train: Bool) -> Bool {
        guard train, sceneBiasFraction > 0 else { return false }
        var coin = RandomGenerator(seed: seed ^ 0x5CE4E_B1A5)
        return Double(coin.uniform()) < sceneBiasFraction
    }

    /// Background clips for `backgrounds` from every video file under `folder` (searched
    /// recursively): each resized so its shorter side is `size`, centre-cropped to size x size,
    /// resampled to `fps`, at most `maxFrames` frames. Files that do not decode are skipped and
    /// named in the warnings.
    public static func loadBackgrounds(folder: URL, size: Int, fps: Int, maxFrames: Int = 320) throws -> (clips: [DecodedVideo], warnings: [String]) {
        let fm = FileManager.default
        guard let walker = fm.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw VideoError("\(folder.path): cannot list background videos")
        }
        let extensions: Set<String> = ["mp4", "avi", "mkv", "webm", "mov", "mpg", "mpeg", "m4v", "ogv"]
        let files = walker.compactMap { $0 as? URL }.filter { extensions.contains($0.pathExtension.lowercased()) }.sorted { $0.path < $1.path }
        var clips: [DecodedVideo] = [], warnings: [String] = []
        for file in files {
            do {
                let decoded = try VideoReader(path: file.path).decodeAll(size: .shortSide(size), fps: Double(fps), maxFrames: maxFrames)
                guard decoded.frameCount >= 2 else { warnings.append("\(file.path): fewer than 2 frames, not used as a background"); continue }
                clips.append(centreCrop(decoded, size: size))
            } catch {
                warnings.append("\(error), not used as a background")
            }
        }
        guard !clips.isEmpty else { throw VideoError("\(folder.path): no decodable video files to use as backgrounds") }
        return (clips, warnings)
    }

    static func centreCrop(_ v: DecodedVideo, size: Int) -> DecodedVideo {
        let x0 = (v.width - size) / 2, y0 = (v.height - size) / 2
        var pixels = [UInt8](repeating: 0, count: v.frameCount * size * size * 3)
        for t in 0..<v.frameCount { for y in 0..<size {
            let src = ((t * v.height + y0 + y) * v.width + x0) * 3, dst = (t * size + y) * size * 3
            for i in 0..<(size * 3) { pixels[dst + i] = v.pixels[src + i] }
        }}
        return DecodedVideo(pixels: pixels, frameCount: v.frameCount, height: size, width: size, fps: v.fps, warnings: v.warnings)
    }

    enum Shape: CaseIterable { case disc, square, triangle, cross }
    enum Texture: CaseIterable { case solid, stripes, checker }

    struct Object {
        var shape: Shape, texture: Texture
        var colour: (Float, Float, Float), colour2: (Float, Float, Float)
        var x: Float, y: Float, radius: Float, angle: Float
        var speed: Float, phase: Float
    }

    /// Renders video `index` of class `label`; `train` selects the scene-bias behaviour.
    /// Returns (F, H, W, 3) uint8.
    public func render(label: Int, seed: UInt64, train: Bool) -> [UInt8] {
        var rng = RandomGenerator(seed: seed)
        let n = Float(size)
        func colour() -> (Float, Float, Float) { (40 + 215 * rng.uniform(), 40 + 215 * rng.uniform(), 40 + 215 * rng.uniform()) }
        // Each object moves by the class's pattern at its own speed.
        let objects: [Object] = (0..<objectsPerVideo).map { _ in
            Object(shape: Shape.allCases[Int(rng.uniform() * 4) % 4], texture: Texture.allCases[Int(rng.uniform() * 3) % 3],
                   colour: colour(), colour2: colour(),
                   x: n * (0.3 + 0.4 * rng.uniform()), y: n * (0.3 + 0.4 * rng.uniform()),
                   radius: n * (0.11 + 0.08 * rng.uniform()), angle: rng.uniform() * 2 * .pi,
                   speed: 0.6 + 0.6 * rng.uniform(), phase: rng.uniform() * 2 * .pi)
        }
        // Background: a drifting sum of two gratings with random colours; its hue is random, or
        // decided by the class in the scene-bias training split.
        var bgA = colour(), bgB = colour()
        let biased = hasBiasedBackground(seed: seed, train: train)
        let hue = Float(label) / Float(classes)
        if biased && backgrounds.isEmpty {
            bgA = hueColour(hue, brightness: 150); bgB = hueColour(hue, brightness: 70)
        }
        // a window of one real background clip (its own generator: the objects stay the same)
        var footageRNG = RandomGenerator(seed: seed ^ 0xBAC6_0F00)
        let footage = backgrounds.isEmpty ? nil : backgrounds[Int(footageRNG.next() % UInt64(backgrounds.count))]
        let footageStart = footage.map { Int(footageRNG.next() % UInt64(max(1, $0.frameCount - frames + 1))) } ?? 0
        let tint = hueColour(hue, brightness: 150)
        let k1 = (0.15 + 0.25 * rng.uniform(), 0.15 + 0.25 * rng.uniform()), k2 = (0.1 + 0.3 * rng.uniform(), -0.1 - 0.2 * rng.uniform())
        let drift = (backgroundDrift * (rng.uniform() * 2 - 1), backgroundDrift * (rng.uniform() * 2 - 1))
        let pattern = Self.patterns[label % Self.patterns.count]

        var out = [UInt8](repeating: 0, count: frames * size * size * 3)
        for t in 0..<frames {
            // Time from the middle frame.
            let ft = Float(t) - Float(frames - 1) / 2
            var scene = objects
            for i in scene.indices {
                var o = objects[i]
                let s = o.speed * speed
                // Per frame at speed s (0.6-1.2 times `speed`): translation 1.75 s px at 64 px (an
                // object leaving the frame comes back in on the other side), rotation 0.2 s rad (at
                // most 29 degrees per 2 frames: below the 45 of a square's or a cross's symmetry, so
                // the direction is not aliased at clip stride 2), zoom by a factor 2^(0.12 s)
                // (between 0.6 and 1.7 times the object's size, then back to the other end, like a
                // conveyor).
                let travel = 1.75 / 64 * n * s * ft
                func zoom(_ rate: Float) -> Float {
                    let cycle = o.phase / (2 * .pi) + rate * ft / 1.5
                    return Foundation.pow(2, 1.5 * (cycle - cycle.rounded(.down)) - 0.75)
                }
                switch pattern {
                case "right": o.x = wrap(o.x + travel, o.radius)
                case "left": o.x = wrap(o.x - travel, o.radius)
                case "up": o.y = wrap(o.y - travel, o.radius)
                case "down": o.y = wrap(o.y + travel, o.radius)
                case "rotate_cw": o.angle += 0.2 * s * ft
                case "rotate_ccw": o.angle -= 0.2 * s * ft
                case "zoom_in": o.radius *= zoom(0.12 * s)
                case "zoom_out": o.radius *= zoom(-0.12 * s)
                case "oscillate_horizontal": o.x += 0.1 * n * Foundation.sin(0.4 * speed * Float(t) + o.phase)
                default: o.y += 0.1 * n * Foundation.sin(0.4 * speed * Float(t) + o.phase)
                }
                scene[i] = o
            }
            for y in 0..<size { for x in 0..<size {
                var c: (Float, Float, Float)
                if let footage {
                    // a clip shorter than the video plays again from its start
                    let q = (((footageStart + t) % footage.frameCount * size + y) * size + x) * 3
                    c = (Float(footage.pixels[q]), Float(footage.pixels[q + 1]), Float(footage.pixels[q + 2]))
                    if biased { c = ((c.0 + tint.0) / 2, (c.1 + tint.1) / 2, (c.2 + tint.2) / 2) }
                } else {
                    let bx = Float(x) + drift.0 * Float(t), by = Float(y) + drift.1 * Float(t)
                    let g = 0.5 + 0.25 * Foundation.sin(k1.0 * bx + k1.1 * by) + 0.25 * Foundation.sin(k2.0 * bx + k2.1 * by)
                    c = (bgA.0 * g + bgB.0 * (1 - g), bgA.1 * g + bgB.1 * (1 - g), bgA.2 * g + bgB.2 * (1 - g))
                }
                for o in scene {
                    if let oc = shade(o, Float(x), Float(y)) { c = oc }
                }
                let p = ((t * size + y) * size + x) * 3
                out[p] = UInt8(max(0, min(255, c.0))); out[p + 1] = UInt8(max(0, min(255, c.1))); out[p + 2] = UInt8(max(0, min(255, c.2)))
            }}
        }
        return out
    }

    /// A coordinate moved past one edge of the frame (object of radius r fully out) re-enters at
    /// the other.
    func wrap(_ c: Float, _ r: Float) -> Float {
        let period = Float(size) + 2 * r
        let shifted = (c + r).truncatingRemainder(dividingBy: period)
        return (shifted < 0 ? shifted + period : shifted) - r
    }

    /// The object's colour at (x, y), or nil outside it.
    func shade(_ o: Object, _ x: Float, _ y: Float) -> (Float, Float, Float)? {
        let dx = x - o.x, dy = y - o.y
        // object-local coordinates, in units of its radius
        let ca = Foundation.cos(o.angle), sa = Foundation.sin(o.angle)
        let lx = (ca * dx + sa * dy) / o.radius, ly = (-sa * dx + ca * dy) / o.radius
        let inside: Bool
        switch o.shape {
        case .disc: inside = lx * lx + ly * ly <= 1
        case .square: inside = abs(lx) <= 0.85 && abs(ly) <= 0.85
        case .triangle: inside = ly <= 0.8 && ly >= -1 + 2 * abs(lx) * 0.9 - 0.2 && abs(lx) <= 1
        case .cross: inside = (abs(lx) <= 1 && abs(ly) <= 0.33) || (abs(ly) <= 1 && abs(lx) <= 0.33)
        }
        guard inside else { return nil }
        // Textures live in object coordinates, so rotation and zoom are visible inside the object.
        let second: Bool
        switch o.texture {
        case .solid: second = false
        case .stripes: second = Int(((lx + 2) * 3).rounded(.down)) % 2 == 0
        case .checker: second = (Int(((lx + 2) * 2.5).rounded(.down)) + Int(((ly + 2) * 2.5).rounded(.down))) % 2 == 0
        }
        return second ? o.colour2 : o.colour
    }

    func hueColour(_ h: Float, brightness: Float) -> (Float, Float, Float) {
        let r = 0.5 + 0.5 * Foundation.cos(2 * .pi * h), g = 0.5 + 0.5 * Foundation.cos(2 * .pi * (h - 1.0 / 3)),
            b = 0.5 + 0.5 * Foundation.cos(2 * .pi * (h - 2.0 / 3))
        return (40 + brightness * r, 40 + brightness * g, 40 + brightness * b)
    }

    /// One generated file.
    public struct Item: Sendable { public var path: String; public var label: Int; public var split: String }

    /// Writes `perClass` videos per class (a `testFraction` of them in the test split) under
    /// `folder/videos/<pattern>/`, plus `labels.csv` (path,label,split) and `classes.txt`.
    public func generate(into folder: URL, perClass: Int, testFraction: Double = 0.25, seed: UInt64 = 0,
                         codec: String? = nil, ext: String = "mp4", progress: (Int, Int) -> Void = { _, _ in }) throws -> [Item] {
        precondition(classes >= 2 && classes <= Self.patterns.count, "classes must be 2...\(Self.patterns.count)")
        let fm = FileManager.default
        var items: [Item] = []
        let total = classes * perClass
        let testPerClass = Int((Double(perClass) * testFraction).rounded())
        var done = 0
        for c in 0..<classes {
            let dir = folder.appendingPathComponent("videos").appendingPathComponent(Self.patterns[c])
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            for i in 0..<perClass {
                let split = i < perClass - testPerClass ? "train" : "test"
                let videoSeed = seed &* 1_000_003 &+ UInt64(c * 100_000 + i)
                let pixels = render(label: c, seed: videoSeed, train: split == "train")
                let path = dir.appendingPathComponent(String(format: "%@_%04d.%@", Self.patterns[c], i, ext)).path
                let writer = try VideoWriter(path: path, width: size, height: size, fps: fps, codec: codec)
                let frameBytes = size * size * 3
                try pixels.withUnsafeBufferPointer { buf in
                    for t in 0..<frames { try writer.append(rgb: buf.baseAddress! + t * frameBytes) }
                }
                try writer.finish()
                items.append(Item(path: path, label: c, split: split))
                done += 1
                progress(done, total)
            }
        }
        var csv = "path,label,split\n"
        for it in items { csv += "\(it.path),\(it.label),\(it.split)\n" }
        try csv.write(to: folder.appendingPathComponent("labels.csv"), atomically: true, encoding: .utf8)
        try (Array(Self.patterns.prefix(classes)).joined(separator: "\n") + "\n")
            .write(to: folder.appendingPathComponent("classes.txt"), atomically: true, encoding: .utf8)
        return items
    }
}
