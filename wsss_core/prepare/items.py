"""What ``wsss-prepare`` knows how to get: named items, their sources and where they go.

An *item* is one thing a config needs on disk: a data set in the layout the readers expect
(``voc12-aug``: VOC 2012 + SBD merged), a weight file under the name a backbone loads
(``torchvision-vgg16``), a folder of saliency maps.  Each item says

* where it comes from (:class:`Download`: mirrors tried in order, the file name, the size
  and checksum the source publishes, or ``manual``: how a person gets it when no program
  can, e.g. a form or a shared-drive link; ``wsss-prepare ITEM --from PATH`` then takes the
  file from disk);
* where it goes: ``root`` (``'data'`` = ``$WSSS_DATA``, ``'weights'`` = ``$WSSS_WEIGHTS``)
  and ``path`` under it, which is what a config's ``'item:NAME'`` reference resolves to;
* how the downloads become that path (``install``: ``'file'`` moves the one download into
  place, ``'extract'`` unpacks archives under the root, or ``'module:function'`` a
  conversion called as ``function(item, files, root)``);
* which other items it builds on (``requires``), its licence and its size on disk.

Items come from the core (:data:`CORE_ITEMS`) and from plugins through the
``wsss_prepare_items`` hook (:func:`all_items`).  Nothing here downloads or imports torch.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ['Download', 'PrepareItem', 'ITEM_PREFIX', 'CORE_ITEMS', 'ROOTS', 'root_dir',
           'all_items', 'get_item', 'is_item_ref', 'item_name_of']

#: a config value ``'item:NAME'`` (or ``'item:NAME/sub/path'``) names an item's path
ITEM_PREFIX = 'item:'

#: environment variable and default of each root
ROOTS = {'data': ('WSSS_DATA', '~/.cache/wsss/data'),
         'weights': ('WSSS_WEIGHTS', '~/.cache/wsss/weights')}

INSTALL_KINDS = ('file', 'extract')


@dataclasses.dataclass(frozen=True)
class Download:
    """One file to fetch.

    Attributes:
        filename: the name it is saved under (in ``<root>/.downloads/``).
        urls: mirrors, tried in order; empty when only a person can fetch it (``manual``).
        size: exact bytes, where the source states them (checked after the download).
        approx_mb: about how big it is, for listings and the disk-space check.
        sha256: the SHA-256 (or a prefix of at least 8 hex digits, as torchvision's file
            names carry) where the source publishes one.
        md5: the MD5 where that is what the source publishes.
        manual: how to get the file by hand when ``urls`` is empty (or as a fallback).
    """

    filename: str
    urls: Tuple[str, ...] = ()
    size: Optional[int] = None
    sha256: Optional[str] = None
    md5: Optional[str] = None
    manual: str = ''
    approx_mb: Optional[float] = None

    def __post_init__(self):
        object.__setattr__(self, 'urls', tuple(self.urls))
        if not self.urls and not self.manual:
            raise ValueError(f'download {self.filename!r}: give urls or say how to get it '
                             '(manual=...)')
        if self.sha256 is not None and len(self.sha256) < 8:
            raise ValueError(f'download {self.filename!r}: a sha256 prefix needs >= 8 hex '
                             f'digits, got {self.sha256!r}')

    @property
    def checksum(self) -> str:
        """How the file is checked, for listings (``sha256 397923af...``, ``md5 ...``)."""
        if self.sha256:
            return f'sha256 {self.sha256[:12]}{"..." if len(self.sha256) > 12 else ""}'
        if self.md5:
            return f'md5 {self.md5}'
        return 'none published (recorded at the first download)'


@dataclasses.dataclass(frozen=True)
class PrepareItem:
    """A named thing a config needs on disk (see the module docstring).

    Attributes:
        name: the item name (``voc12-aug``); configs refer to ``'item:<name>'``.
        kind: ``'dataset'``, ``'weights'``, ``'saliency'`` or ``'metadata'``.
        description: one line for ``wsss-prepare list``.
        root: ``'data'`` or ``'weights'``.
        path: where the item lives under the root (a file or a folder); ``item:<name>``
            resolves to it.
        downloads: the files to fetch (none for an item made from others).
        install: ``'file'``, ``'extract'`` or ``'package.module:function'``.
        extract_to: the folder under the root that ``extract`` unpacks the archives into
            (``''``: the root itself, for archives that hold the item's path).
        marker: a path under the root whose presence means "installed" (default ``path``);
            for an item that adds files to another's folder (``voc12-aug`` into VOC's).
        requires: items that must be present first.
        licence: the terms the source states (a note, not legal advice).
        disk_size: about how many bytes the installed item takes.
        notes: anything else a user should know (e.g. which method used it).
    """

    name: str
    kind: str
    description: str
    root: str
    path: str
    downloads: Tuple[Download, ...] = ()
    install: str = 'file'
    extract_to: str = ''
    marker: Optional[str] = None
    requires: Tuple[str, ...] = ()
    licence: str = ''
    disk_size: Optional[int] = None
    notes: str = ''

    def __post_init__(self):
        object.__setattr__(self, 'downloads', tuple(self.downloads))
        object.__setattr__(self, 'requires', tuple(self.requires))
        if self.root not in ROOTS:
            raise ValueError(f'item {self.name!r}: root must be one of {sorted(ROOTS)}, '
                             f'got {self.root!r}')
        if self.install not in INSTALL_KINDS and ':' not in self.install:
            raise ValueError(f"item {self.name!r}: install must be 'file', 'extract' or "
                             f"'module:function', got {self.install!r}")
        if self.install == 'file' and len(self.downloads) != 1:
            raise ValueError(f"item {self.name!r}: install='file' takes exactly one download")
        if Path(self.path).is_absolute() or '..' in Path(self.path).parts:
            raise ValueError(f'item {self.name!r}: path must be relative, inside its root')

    @property
    def manual_only(self) -> bool:
        """True when some download has no URL a program can use."""
        return any(not d.urls for d in self.downloads)

    @property
    def download_mb(self) -> Optional[float]:
        """About how many MB the downloads take (None when a size is unknown)."""
        sizes = [d.size / 1e6 if d.size is not None else d.approx_mb for d in self.downloads]
        return sum(sizes) if sizes and all(s is not None for s in sizes) else None

    def location(self, root: Optional[os.PathLike] = None) -> Path:
        """The item's path (what ``item:<name>`` resolves to)."""
        return Path(root if root is not None else root_dir(self.root)) / self.path

    def marker_path(self, root: Optional[os.PathLike] = None) -> Path:
        base = Path(root if root is not None else root_dir(self.root))
        return base / (self.marker or self.path)


def root_dir(root: str, override: Optional[os.PathLike] = None) -> Path:
    """The folder of ``root`` (``'data'`` / ``'weights'``): ``override``, else its
    environment variable, else its default, with ``~`` expanded, made absolute."""
    if root not in ROOTS:
        raise KeyError(f'unknown root {root!r}; roots: {sorted(ROOTS)}')
    env, default = ROOTS[root]
    value = override if override is not None else os.environ.get(env) or default
    return Path(os.path.expanduser(os.fspath(value))).absolute()


def is_item_ref(value) -> bool:
    return isinstance(value, str) and value.startswith(ITEM_PREFIX)


def item_name_of(ref: str) -> Tuple[str, str]:
    """``'item:voc12-aug/JPEGImages'`` -> ``('voc12-aug', 'JPEGImages')``."""
    rest = ref[len(ITEM_PREFIX):]
    name, _, sub = rest.partition('/')
    return name, sub


# ----------------------------------------------------------------------------- the core's
_TORCHVISION = 'https://download.pytorch.org/models/'
_TV_LICENCE = ('BSD-3-Clause (torchvision code); the weights were trained on ImageNet, whose '
               'terms allow non-commercial research use')
_VOC_LICENCE = ('PASCAL VOC: annotations for research use; the images come from Flickr under '
                "their owners' terms (see the VOC site)")


def _torchvision(name: str, filename: str, mb: float, what: str) -> PrepareItem:
    sha_prefix = filename.rsplit('-', 1)[1].split('.')[0]
    return PrepareItem(
        name=name, kind='weights', description=what, root='weights', path=filename,
        downloads=(Download(filename, urls=(_TORCHVISION + filename,), sha256=sha_prefix,
                            approx_mb=mb),),
        licence=_TV_LICENCE, disk_size=int(mb * 1e6))


#: wsolevaluation's repository: its metadata/<CUB|ILSVRC>/ folders (both WSOL items)
_WSOLEVALUATION = Download('wsolevaluation-master.zip',
                           urls=('https://github.com/clovaai/wsolevaluation/archive/refs/'
                                 'heads/master.zip',))


CORE_ITEMS: Tuple[PrepareItem, ...] = (
    PrepareItem(
        name='voc12', kind='dataset',
        description='PASCAL VOC 2012 trainval (images, 2913 masks, lists)',
        root='data', path='VOCdevkit/VOC2012', install='extract',
        downloads=(Download('VOCtrainval_11-May-2012.tar',
                            urls=('https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/'
                                  'VOCtrainval_11-May-2012.tar',
                                  'http://host.robots.ox.ac.uk/pascal/VOC/voc2012/'
                                  'VOCtrainval_11-May-2012.tar'),
                            md5='6cd6e144f989b92b3379bac3b3de84fd', approx_mb=1_999),),
        marker='VOCdevkit/VOC2012/JPEGImages', licence=_VOC_LICENCE, disk_size=2_000_000_000),
    PrepareItem(
        name='sbd', kind='dataset',
        description="Hariharan et al.'s Semantic Boundaries Dataset (11355 class masks, .mat)",
        root='data', path='SBD/benchmark_RELEASE', install='extract',
        downloads=(Download('benchmark.tgz',
                            urls=('https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/'
                                  'grouping/semantic_contours/benchmark.tgz',),
                            md5='82b4d87ceb2ed10f6038a1cba92111cb', approx_mb=1_419),),
        extract_to='SBD', marker='SBD/benchmark_RELEASE/dataset/cls',
        licence='SBD: for research use (see the SBD page); images from PASCAL VOC',
        disk_size=1_500_000_000),
    PrepareItem(
        name='voc12-aug', kind='dataset',
        description='VOC 2012 + SBD merged: SegmentationClassAug PNGs, train_aug / '
                    'trainval_aug lists, cls_labels.npy',
        root='data', path='VOCdevkit/VOC2012',
        install='wsss_core.prepare.installers:install_voc12_aug',
        marker='VOCdevkit/VOC2012/SegmentationClassAug', requires=('voc12', 'sbd'),
        licence=_VOC_LICENCE + '; SBD masks for research use', disk_size=60_000_000,
        notes='made from voc12 and sbd, nothing downloaded'),
    PrepareItem(
        name='coco14', kind='dataset',
        description='MS COCO 2014 train/val images + instance annotations -> class PNGs '
                    '0..80 / 255',
        root='data', path='coco2014',
        install='wsss_core.prepare.installers:install_coco14',
        downloads=(Download('train2014.zip',
                            urls=('http://images.cocodataset.org/zips/train2014.zip',),
                            approx_mb=13_500),
                   Download('val2014.zip',
                            urls=('http://images.cocodataset.org/zips/val2014.zip',),
                            approx_mb=6_350),
                   Download('annotations_trainval2014.zip',
                            urls=('http://images.cocodataset.org/annotations/'
                                  'annotations_trainval2014.zip',),
                            approx_mb=252)),
        marker='coco2014/SegmentationClass',
        licence='COCO: annotations CC BY 4.0; images under their Flickr licences',
        disk_size=21_000_000_000,
        notes='COCO publishes no checksums: the SHA-256 of each download is recorded at the '
              'first download and checked from then on'),
    PrepareItem(
        name='cub200-wsol', kind='dataset',
        description='CUB-200-2011 images in the wsolevaluation metadata layout (train '
                    'labels, test boxes and masks)',
        root='data', path='wsol',
        install='wsss_core.prepare.installers:install_wsol_metadata',
        downloads=(Download('CUB_200_2011.tgz',
                            urls=('https://data.caltech.edu/records/65de6-vp158/files/'
                                  'CUB_200_2011.tgz',),
                            md5='97eceeb196236b17998738112f37df78', approx_mb=1_150),
                   _WSOLEVALUATION),
        marker='wsol/metadata/CUB',
        licence='CUB-200-2011: research use (Caltech); wsolevaluation metadata MIT',
        disk_size=1_200_000_000,
        notes="wsolevaluation's CUBV2 validation images are on a shared drive: "
              "'wsss-prepare cub200-wsol --from DIR' takes them from disk"),
    PrepareItem(
        name='ilsvrc-wsol', kind='dataset',
        description='ImageNet-1k (ILSVRC 2012) in the wsolevaluation metadata layout',
        root='data', path='wsol',
        install='wsss_core.prepare.installers:install_wsol_metadata',
        downloads=(Download('ILSVRC2012_img_train.tar',
                            manual='register at https://image-net.org and download '
                                   'ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar; '
                                   "then 'wsss-prepare ilsvrc-wsol --from DIR' (the folder "
                                   'holding both)'),
                   Download('ILSVRC2012_img_val.tar', manual='see ILSVRC2012_img_train.tar'),
                   _WSOLEVALUATION),
        marker='wsol/metadata/ILSVRC',
        licence='ImageNet: non-commercial research and education only (its terms of '
                'access); wsolevaluation metadata MIT',
        disk_size=150_000_000_000),
    _torchvision('torchvision-vgg16', 'vgg16-397923af.pth', 527.8,
                 'VGG16, ImageNet (torchvision): OAA and NSROM classifiers'),
    _torchvision('torchvision-resnet50', 'resnet50-19c8e357.pth', 97.8,
                 'ResNet-50, ImageNet (torchvision, the original weights irn and MoANA use)'),
    _torchvision('torchvision-resnet101', 'resnet101-63fe2227.pth', 170.5,
                 "ResNet-101, ImageNet (torchvision's V1 weights, timm's resnet101.tv_in1k)"),
    _torchvision('torchvision-inception-v3', 'inception_v3_google-0cc3c7bd.pth', 103.9,
                 'Inception v3, ImageNet (torchvision; the WSOL literature\'s third backbone)'),
    PrepareItem(
        name='psa-resnet38', kind='weights',
        description="psa's ResNet-38 (model A1), ImageNet: EDAM's and psa's backbone",
        root='weights', path='resnet38d_imagenet.pth',
        install='wsss_core.prepare.installers:install_resnet38',
        downloads=(Download('ilsvrc-cls_rna-a1_cls1000_ep-0001.params',
                            manual="the MXNet file of itijyou/ademxapp's model A1 (linked "
                                   "from psa's README; mirrors are on shared drives): "
                                   "'wsss-prepare psa-resnet38 --from FILE' converts it "
                                   '(.params, no MXNet needed) or takes a psa-converted '
                                   '.pth'),),
        licence='ademxapp: see its repository (no explicit licence for the weights)',
        disk_size=420_000_000),
)


# ----------------------------------------------------------------------------- lookup
def all_items(plugin_items: Optional[Iterable[PrepareItem]] = None) -> Dict[str, PrepareItem]:
    """The core's items and the plugins' (``wsss_prepare_items`` hook), by name.

    ``plugin_items``: use these instead of asking the installed plugins (tests); a name
    given twice, an object that is no PrepareItem or an unknown requirement is then an
    error naming it.  Asked from the installed plugins, such an item is left out with a
    warning naming its plugin (and the other owner), so one plugin's mistake does not stop
    every ``wsss-prepare`` and ``wsss-run``.
    """
    if plugin_items is None:
        plugin_items = _checked_plugin_items({item.name: 'core' for item in CORE_ITEMS})
    out: Dict[str, PrepareItem] = {}
    for item in (*CORE_ITEMS, *plugin_items):
        if not isinstance(item, PrepareItem):
            raise TypeError(f'wsss_prepare_items must return PrepareItem objects, got '
                            f'{type(item).__name__}')
        if item.name in out:
            raise ValueError(f'prepare item {item.name!r} is defined twice')
        out[item.name] = item
    for item in out.values():
        unknown = [r for r in item.requires if r not in out]
        if unknown:
            raise ValueError(f'prepare item {item.name!r} requires unknown item(s) {unknown}')
    return out


def _checked_plugin_items(owners: Dict[str, str]) -> List[PrepareItem]:
    """The installed plugins' items that can join ``owners`` (item name -> who defines it):
    each left out with a warning when it is no PrepareItem, its name is taken or it
    requires an item nobody defines."""
    from ..plugin_loader import plugin_hook_answers
    answers = []
    for plugin, answer in plugin_hook_answers('wsss_prepare_items'):
        if isinstance(answer, (list, tuple)):
            answers += [(plugin, item) for item in answer]
        else:
            _leave_out(plugin, f'wsss_prepare_items returned a {type(answer).__name__}, not a '
                               'list of PrepareItem')
    kept: List[PrepareItem] = []
    for plugin, item in answers:
        if not isinstance(item, PrepareItem):
            _leave_out(plugin, f'wsss_prepare_items returned a {type(item).__name__}, not a '
                               'PrepareItem')
        elif item.name in owners:
            _leave_out(plugin, f'prepare item {item.name!r} is already defined by '
                               f'{owners[item.name]!r}')
        else:
            owners[item.name] = plugin
            kept.append(item)
    changed = True
    while changed:   # until no kept item requires one left out (or nobody's)
        known = {name for name, owner in owners.items() if owner == 'core'} | \
            {item.name for item in kept}
        unusable = [item for item in kept if any(r not in known for r in item.requires)]
        for item in unusable:
            _leave_out(owners[item.name], f'prepare item {item.name!r} requires unknown '
                                          f'item(s) {[r for r in item.requires if r not in known]}')
            kept.remove(item)
        changed = bool(unusable)
    return kept


def _leave_out(plugin: str, why: str) -> None:
    import logging
    logging.getLogger('wsss').warning(f"plugin '{plugin}': {why}; left out of wsss-prepare")


def get_item(name: str, items: Optional[Mapping[str, PrepareItem]] = None) -> PrepareItem:
    """The item called ``name``; an unknown name is a KeyError listing the closest ones."""
    items = all_items() if items is None else items
    if name not in items:
        import difflib
        close = difflib.get_close_matches(name, list(items), n=3)
        hint = f'; did you mean {", ".join(close)}?' if close else ''
        raise KeyError(f'no prepare item {name!r}{hint} (wsss-prepare list shows them all)')
    return items[name]
