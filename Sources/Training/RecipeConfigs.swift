import Backbones
import DataHDF5
import Foundation
import Losses
import Pathways
import Tensor

/// What a recipe derives: the library configs of the model, the sampling, the augmentation
/// and the optimiser, each built from the recipe's typed sections (the schema is the one
/// source of their defaults).
extension Recipe {
    /// Labels instead of contrast (the upper bound).
    public var supervised: Bool { loss.objective == .supervised }
    /// Whether a Motion pathway trains beside the visual one.
    public var contrastiveMotion: Bool { !supervised && model.motionPathway != .none }
    /// Whether MCL's alignment loss is on.
    public var aligned: Bool { !supervised && loss.alignment }

    public var visualConfig: VideoResNetConfig {
        VideoResNetConfig(kind: model.arch, width: model.width, blocksPerStage: model.blocks)
    }

    /// The MaCLR model the recipe describes.
    public var modelConfig: MaCLRModel.Config {
        let channels = data.motionInput.channels
        let motion: MotionBackbone?
        switch model.motionPathway {
        case .frames: motion = .frames(FrameResNetConfig(width: model.motionWidth, blocksPerStage: model.motionBlocks, inputChannels: channels))
        case .video: motion = .video(VideoResNetConfig(kind: model.arch, width: model.motionWidth, blocksPerStage: model.motionBlocks,
                                                       inputChannels: channels))
        case .none: motion = nil
        }
        let alignment = !self.loss.alignment ? nil : MaCLRModel.Alignment(
            loss: MotionAlignment(weighting: loss.alignmentWeighting, spatiotemporalWeight: Float(loss.alignmentSpatiotemporal),
                                  temporalWeight: Float(loss.alignmentTemporal), spatialWeight: Float(loss.alignmentSpatial)),
            layer: loss.alignmentLayer == "last" ? nil : loss.alignmentLayer)
        return MaCLRModel.Config(
            visual: visualConfig, motion: motion, weightInit: model.`init`, headHidden: model.headHidden, embedding: model.embedding,
            queueSize: model.queueSize, momentum: Float(model.momentum), keyBatchNorm: model.keyBn,
            loss: MaCLRLoss(crossModalWeight: Float(loss.crossModalWeight), motionIntraWeight: Float(loss.motionIntraWeight),
                            temperature: Float(loss.temperature)),
            alignment: alignment)
    }

    public var sampling: ClipSampling {
        ClipSampling(frames: data.clipFrames, stride: data.clipStride, height: data.crop, width: data.crop,
                     positiveGap: data.positiveGap.range, motion: data.motionInput)
    }

    /// Loader threads: `data.loader_workers`, or with 0 a quarter of the cores, at least 2.
    public var loaderThreads: Int { data.loaderWorkers > 0 ? data.loaderWorkers : max(2, EngineOptions.cores / 4) }

    public var augmentation: Augmentation {
        guard data.augment else {
            // which clips are drawn is sampling, not augmentation: MCL's temporal sampling works on whole frames too
            var plain = Augmentation.none
            plain.motionTemporalSampling = data.motionTemporalSampling
            return plain
        }
        var a = Augmentation(cropScale: data.cropScale.range, jitterProbability: data.colorJitter, grayscaleProbability: data.grayscale,
                             blurProbability: data.blur, blurSigma: data.blurSigma.range,
                             motionTemporalSampling: data.motionTemporalSampling, motionSpatialCropping: data.motionSpatialCropping)
        if !data.flip { a.flipProbability = 0 }
        return a
    }

    /// The recipe's optimiser over `params`, at the peak learning rate.
    public func makeOptimizer(_ params: [Parameter]) -> Optimizer {
        let lr = Float(optim.lr), decay = Float(optim.weightDecay)
        switch optim.optimizer {
        case .adamw: return AdamW(params, learningRate: lr, weightDecay: decay)
        case .sgd: return SGD(params, learningRate: lr, momentum: Float(optim.momentum), weightDecay: decay, nesterov: optim.nesterov)
        }
    }

    /// Keys whose change does not change what a run computes (where it writes, how often it logs,
    /// how many threads load: batches are a function of seed, epoch and batch).
    static let bookkeepingKeys = Set(["train.output", "train.checkpoint_every", "train.keep_checkpoints", "train.log_every",
                                      "train.monitor_every", "train.monitor_videos", "data.loader_workers"]
        + RecipeKey.all.map(\.key).filter { $0.hasPrefix("eval.") })
}
