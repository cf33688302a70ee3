"""Conversions from the formats the data sets and weights are published in to the project's.

Each is a function with a reader of its own or a maintained library (no Caffe or MXNet):

* :mod:`.sbd`: SBD's ``cls/<id>.mat`` class masks (scipy) -> palette PNGs, and the VOC 2012 +
  SBD merge (``SegmentationClassAug``, ``train_aug`` / ``trainval_aug``, ``cls_labels.npy``);
* :mod:`.coco`: COCO instance annotations -> VOC-style class PNGs 0..80 / 255 (pycocotools);
* :mod:`.caffe` on :mod:`.protobuf_wire`: a ``.caffemodel`` (Caffe ``NetParameter``
  protobuf) -> ``[CaffeLayer(name, type, blobs)]``; the DeepLab plugin maps the DeepLab v2
  ResNet-101 layers to its module names (``wsss_deeplab.convert_caffe``);
* :mod:`.mxnet`: an MXNet ``.params`` file (NDArray list) -> arrays by name, and psa's
  ResNet-38 ImageNet weights -> :class:`~wsss_core.models.resnet38.ResNet38` names;
* :mod:`.state_dict`: the check every weight conversion ends with (the keys and shapes of
  the model it feeds) and an atomic writer.

Nothing is imported here: scipy, pycocotools and torch load only with the module that needs
them.
"""
