import Foundation
import Tensor

/// Whose tensor names a video ResNet's weights file uses. The network is the same in each
/// (torchvision's R3D-18 / R(2+1)D-18 structure); only the names differ:
///
///     torchvision   stem.0.weight           layer1.0.conv1.0.weight               layer2.0.downsample.1.weight   fc.weight
///     pytorchvideo  blocks.0.conv.weight    blocks.1.res_blocks.0.branch2.conv_a.weight   ...branch1_norm.weight  blocks.5.proj.weight
///     mmaction2     conv1.conv.weight       layer1.0.conv1.conv.weight            layer2.0.downsample.bn.weight  cls_head.fc_cls.weight
///
/// pytorchvideo's names are those of its `Net` of a `ResNetBasicStem` and `ResStage`s of
/// `ResBlock`s (a two-conv branch2: conv_a / norm_a, conv_b / norm_b), with its `Conv2plus1d`
/// (conv_xy first) for R(2+1)D. mmaction2's are its `ResNet3d` backbone (depth 18, no pooling
/// after the stem); its `ResNet2Plus1d` is another network (a wider stem and a max-pool) and is
/// refused.
public enum WeightLayout: String, CaseIterable, Codable, Sendable {
    case torchvision, pytorchvideo, mmaction2

    /// The name in this layout of a torchvision key, for a network of `kind`; nil where the
    /// layout has no such network.
    func name(ofTorchvisionKey key: String, kind: VideoResNetKind) -> String? {
        if self == .torchvision { return key }
        if self == .mmaction2 && kind == .r2plus1d18 { return nil }
        var parts = key.split(separator: ".").map(String.init)
        guard parts.count >= 2, let leaf = parts.popLast() else { return nil }
        let prefix: String, inner: String
        if parts[0] == "fc" {
            return headPrefix + "." + leaf
        } else if parts[0] == "stem" {
            prefix = stemPrefix
            inner = parts.dropFirst().joined(separator: ".")
            guard let mapped = stemInner(kind)[inner] else { return nil }
            return [prefix, mapped, leaf].filter { !$0.isEmpty }.joined(separator: ".")
        } else if parts[0].hasPrefix("layer"), let stage = Int(parts[0].dropFirst(5)), parts.count >= 3, let block = Int(parts[1]) {
            prefix = blockPrefix(stage: stage, block: block)
            inner = parts.dropFirst(2).joined(separator: ".")
            guard let mapped = blockInner[inner] else { return nil }
            return prefix + "." + mapped + "." + leaf
        }
        return nil
    }

    var stemPrefix: String {
        switch self {
        case .torchvision: return "stem"
        case .pytorchvideo: return "blocks.0"
        case .mmaction2: return "conv1"
        }
    }

    var headPrefix: String {
        switch self {
        case .torchvision: return "fc"
        case .pytorchvideo: return "blocks.5.proj"
        case .mmaction2: return "cls_head.fc_cls"
        }
    }

    /// Keys under the classifier head, which an encoder does not load.
    func isHead(_ key: String) -> Bool {
        key.hasPrefix(headPrefix + ".") || (self == .mmaction2 && key.hasPrefix("cls_head."))
    }

    func blockPrefix(stage: Int, block: Int) -> String {
        self == .pytorchvideo ? "blocks.\(stage).res_blocks.\(block)" : "layer\(stage).\(block)"
    }

    /// The key that tells a stage's block `block` is there (its second conv's BN weight).
    func blockMarker(stage: Int, block: Int) -> String {
        blockPrefix(stage: stage, block: block) + "." + blockInner["conv2.1"]! + ".weight"
    }

    /// torchvision's inner path of a stem tensor ("0" conv, "1" BN; R(2+1)D adds "3" temporal
    /// conv, "4" BN) -> this layout's.
    func stemInner(_ kind: VideoResNetKind) -> [String: String] {
        switch (self, kind) {
        case (.torchvision, _): return ["0": "0", "1": "1", "3": "3", "4": "4"]
        case (.pytorchvideo, .r3d18): return ["0": "conv", "1": "norm"]
        case (.pytorchvideo, .r2plus1d18): return ["0": "conv.conv_xy", "1": "conv.norm", "3": "conv.conv_t", "4": "norm"]
        case (.mmaction2, .r3d18): return ["0": "conv", "1": "bn"]
        case (.mmaction2, .r2plus1d18): return ["0": "conv.conv_s", "1": "conv.bn_s", "3": "conv.conv_t", "4": "bn"]
        }
    }

    /// torchvision's inner path of a block tensor -> this layout's. "convK.0" is an R3D conv;
    /// "convK.0.0" / ".0.1" / ".0.3" the spatial conv, its BN and the temporal conv of a (2+1)D
    /// conv; "convK.1" the BN after it; "downsample.0" / ".1" the shortcut's conv and BN.
    var blockInner: [String: String] {
        // per block conv (torchvision's name, pytorchvideo's letter): the conv, and inside a
        // (2+1)D conv its spatial conv, BN and temporal conv; the BN after it; then the shortcut's
        // conv and BN
        typealias Names = (conv: String, spatial: String, middleNorm: String, temporal: String, norm: String)
        let names: (String, String) -> Names
        let shortcut: (conv: String, norm: String)
        switch self {
        case .torchvision:
            names = { conv, _ in ("\(conv).0", ".0", ".1", ".3", "\(conv).1") }
            shortcut = ("downsample.0", "downsample.1")
        case .pytorchvideo:
            names = { _, letter in ("branch2.conv_\(letter)", ".conv_xy", ".norm", ".conv_t", "branch2.norm_\(letter)") }
            shortcut = ("branch1_conv", "branch1_norm")
        case .mmaction2:
            names = { conv, _ in ("\(conv).conv", ".conv_s", ".bn_s", ".conv_t", "\(conv).bn") }
            shortcut = ("downsample.conv", "downsample.bn")
        }
        var map = ["downsample.0": shortcut.conv, "downsample.1": shortcut.norm]
        for (conv, letter) in [("conv1", "a"), ("conv2", "b")] {
            let n = names(conv, letter)
            map["\(conv).0"] = n.conv
            map["\(conv).0.0"] = n.conv + n.spatial
            map["\(conv).0.1"] = n.conv + n.middleNorm
            map["\(conv).0.3"] = n.conv + n.temporal
            map["\(conv).1"] = n.norm
        }
        return map
    }

    /// The stem's first conv weight, whose presence tells the layout and the network.
    func stemConvKey(_ kind: VideoResNetKind) -> String {
        name(ofTorchvisionKey: "stem.0.weight", kind: kind) ?? stemPrefix + "." + stemInner(kind)["0"]! + ".weight"
    }
}

extension VideoResNet {
    /// The state dict in `layout`'s names (PyTorch layouts); nil where the layout has no such network.
    public func stateDict(layout: WeightLayout) -> [String: SafeTensors.Entry]? {
        var out: [String: SafeTensors.Entry] = [:]
        for (key, entry) in torchStateDict() {
            guard let name = layout.name(ofTorchvisionKey: key, kind: config.kind) else { return nil }
            out[name] = entry
        }
        return out
    }
}

/// A video ResNet's weights file as found: its layout, the network its names and shapes describe,
/// and the tensors under their torchvision names.
public struct EncoderFile {
    public let path: String
    public let layout: WeightLayout
    /// The network the file holds (no classifier).
    public let config: VideoResNetConfig
    /// Every tensor of the file under its torchvision name, the head's too (fc.*).
    let tensors: [String: Tensor]
    /// The file's names that `load(into:)` does not load: the classifier head and anything the
    /// network has no place for (a projection head, an optimiser's state).
    public let notLoaded: [String]
    /// The file's name of each torchvision key, for messages in the user's own names.
    let fileName: [String: String]

    /// Reads `path` (safetensors) and recognises it by its tensor names and shapes; the file's
    /// metadata (arch, width, blocks) is used where present and checked against the shapes.
    public init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        let (raw, metadata) = try SafeTensors.read(url)
        try self.init(tensors: raw, metadata: metadata, path: path)
    }

    public init(tensors raw: [String: Tensor], metadata: [String: String] = [:], path: String) throws {
        self.path = path
        // wrappers around the network's own names: DataParallel's module., a recognizer's backbone.
        var named = raw
        if named.keys.allSatisfy({ $0.hasPrefix("module.") }) {
            named = Dictionary(uniqueKeysWithValues: named.map { (String($0.key.dropFirst(7)), $0.value) })
        }
        if named.keys.contains(where: { $0.hasPrefix("backbone.") }) {
            named = Dictionary(uniqueKeysWithValues: named.map { ($0.key.hasPrefix("backbone.") ? String($0.key.dropFirst(9)) : $0.key, $0.value) })
        }
        var found: (WeightLayout, VideoResNetKind)?
        for layout in WeightLayout.allCases {
            for kind in [VideoResNetKind.r2plus1d18, .r3d18] where named[layout.stemConvKey(kind)] != nil {
                // R3D's stem conv key is R(2+1)D's spatial conv key in torchvision's names: the
                // temporal conv tells them apart
                if layout == .torchvision && kind == .r2plus1d18 && named["stem.3.weight"] == nil { continue }
                found = found ?? (layout, kind)
            }
        }
        guard let (layout, kind) = found else {
            throw WeightsError(description: "\(path): not a video ResNet in torchvision's, pytorchvideo's or mmaction2's names (none of stem.0.weight, blocks.0.conv.weight, conv1.conv.weight is there)")
        }
        if layout == .mmaction2 && kind == .r2plus1d18 {
            let stem = named[layout.stemConvKey(kind)]!.shape
            throw WeightsError(description: "\(path): mmaction2's ResNet2Plus1d (conv1.conv.conv_s.weight \(stem)) is not torchvision's r2plus1d_18: its stem is \(stem.first ?? 0) channels wide where torchvision's is 45, and it max-pools after it")
        }
        if let arch = metadata["arch"], arch != kind.rawValue {
            throw WeightsError(description: "\(path): metadata says arch \(arch) but the tensors are \(kind.rawValue)'s (\(layout.stemConvKey(kind)))")
        }
        self.layout = layout

        // blocks per stage, from the names
        var blocks: [Int] = []
        for stage in 1...4 {
            var n = 0
            while named[layout.blockMarker(stage: stage, block: n)] != nil { n += 1 }
            guard n > 0 else {
                throw WeightsError(description: "\(path): stage \(stage) has no blocks (no \(layout.blockMarker(stage: stage, block: 0)))")
            }
            blocks.append(n)
        }
        let stemConv = named[layout.stemConvKey(kind)]!
        guard stemConv.rank >= 4 else {
            throw WeightsError(description: "\(path): '\(layout.stemConvKey(kind))' has shape \(stemConv.shape), expected a conv weight (O, C, kT, kH, kW)")
        }
        let inputChannels = stemConv.shape[1]
        // width: the first whose rounding gives every stage's (and the stem's) channels
        let planes = (1...4).map { named[layout.blockMarker(stage: $0, block: 0)]!.count }
        var candidates = metadata["width"].flatMap(Double.init).map { [$0] } ?? []
        candidates += zip(planes, [64, 128, 256, 512]).map { Double($0) / Double($1) }
        let stemWidth = kind == .r2plus1d18 ? stemConv.shape[0] : nil
        guard let width = candidates.first(where: { w in
            let c = VideoResNetConfig(kind: kind, width: w, blocksPerStage: blocks)
            return c.stagePlanes == planes && stemWidth.map { $0 == c.scaled(45) } != false
        }) else {
            throw WeightsError(description: "\(path): stage widths \(planes)\(stemWidth.map { " and stem width \($0)" } ?? "") are not those of any width multiplier of \(kind.rawValue) (64, 128, 256, 512 and a 45-wide stem, times the same width)")
        }
        config = VideoResNetConfig(kind: kind, width: width, blocksPerStage: blocks, inputChannels: inputChannels)

        // the file's names -> torchvision's (names do not depend on the width: list a narrow network's)
        let reference = VideoResNet(VideoResNetConfig(kind: kind, width: 1.0 / 16, blocksPerStage: blocks, inputChannels: inputChannels, classes: 1), seed: 0)
        var fileName: [String: String] = [:]
        for key in reference.torchStateDict().keys { fileName[key] = layout.name(ofTorchvisionKey: key, kind: kind)! }
        let torchvisionName = Dictionary(uniqueKeysWithValues: fileName.map { ($0.value, $0.key) })
        var tensors: [String: Tensor] = [:]
        var notLoaded: [String] = []
        for (name, tensor) in named {
            if let key = torchvisionName[name], !key.hasPrefix("fc.") { tensors[key] = tensor } else { notLoaded.append(name) }
        }
        self.tensors = tensors
        self.notLoaded = notLoaded.sorted()
        self.fileName = fileName
    }

    /// Loads the encoder's tensors into `network` (its fc, if any, left as it is): every tensor
    /// of the network must be in the file with its shape, or the one at fault is named.
    public func load(into network: VideoResNet) throws {
        var expected = network.torchStateDict()
        expected = expected.filter { !$0.key.hasPrefix("fc.") && !$0.key.hasSuffix("num_batches_tracked") }
        for key in expected.keys.sorted() where tensors[key] == nil {
            throw WeightsError(description: "\(path): missing tensor '\(fileName[key] ?? key)' (\(layout.rawValue) names)")
        }
        do {
            try network.loadTorchStateDict(tensors, source: path, ignoring: ["fc."])
        } catch let error as WeightsError {
            // name the tensor as the file does
            var text = error.description
            for (key, name) in fileName where key != name && text.contains("'\(key)'") {
                text = text.replacingOccurrences(of: "'\(key)'", with: "'\(name)'")
            }
            throw WeightsError(description: text)
        }
    }

    /// The network the file holds, with its weights.
    public func network() throws -> VideoResNet {
        let net = VideoResNet(config, seed: 0)
        try load(into: net)
        return net
    }

    /// "FILE: torchvision's names, r2plus1d_18 width 0.25, blocks 2,2,2,2, 3 input channels".
    public var summary: String {
        "\(path): \(layout.rawValue)'s names, \(config.kind.rawValue) width \(config.width), blocks \(config.blocksPerStage.map(String.init).joined(separator: ",")), \(config.inputChannels) input channels"
    }

    /// What `load` took and left: "62 tensors loaded; not loaded: fc.weight, fc.bias".
    public var loadSummary: String {
        let left = notLoaded.isEmpty ? "every tensor of the file loaded" : "not loaded: " + notLoaded.prefix(8).joined(separator: ", ") + (notLoaded.count > 8 ? " and \(notLoaded.count - 8) more" : "")
        return "\(tensors.count) tensors loaded; \(left)"
    }
}
