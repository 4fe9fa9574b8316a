import DataHDF5
import Video

// The data jobs a command line or another program starts through Training (which imports
// DataHDF5 and Video), under names that say what they are.

/// `maclr prepare`: videos to a dataset folder of HDF5 shards.
public typealias DatasetPreparation = Preparation
/// The synthetic motion videos of `maclr synth`.
public typealias SyntheticVideos = SyntheticMotion
/// How `maclr prepare` reads its input (`--layout`).
public typealias PreparationLayout = DatasetLayout
