"""Pipeline stages: TrainSegmentor and TestSegmentor."""
