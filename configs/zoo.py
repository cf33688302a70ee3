# Every method side by side on SyntheticShapes, each from its ShapeCorpus-pretrained stand-in, one work dir, CPU; needs no files.
# The zoo: the baseline and every method of the shipped plugins on the same data, seed and
# DeepLab recipe, each network started from its stand-in pretrained on the ShapeCorpus (the
# offline stand-in for ImageNet, docs/pretraining.md), in one work dir, then one page:
#
#   wsss-run configs/zoo.py                    (work_dirs/zoo; resumable: run it again)
#   wsss-report --compare work_dirs/zoo         (work_dirs/zoo/compare.html)
#
# It lives in the repository, not in a plugin: it needs every plugin, and the core (like
# every plugin) names only the configs of the plugins it requires.
#
# Each method's stages are taken by name from its own runnable config (stages_from,
# wsss_core.config_compose), so the zoo runs exactly what that config runs:
#   baseline  core::quickstart_pretrained.py (SmallResNet, CAM, saliency fusion) + DeepLab
#   oaa       oaa::synthetic_pretrained.py   (VGG16 1/4: accumulated maps, proxy labels)
#   oaa_iam   its integral attention model (OAA+)
#   nsrom     nsrom::synthetic_pretrained.py (the same VGG; OA-CAM, two DeepLab rounds)
#   edam      edam::synthetic_pretrained.py  (ResNet-38 1/8; DA masks, CRF + saliency route; its
#             classifier's figure is its CMA head on self-pairs, eval_edam_classify)
#   moana     moana::synthetic_pretrained.py, MoANA arm (ResNet-50 1/4; IRN random walk)
#   getam     getam::synthetic_hybrid_pretrained.py (the hybrid ViT; end to end, no DeepLab)
# Every DeepLab stage uses one recipe: deeplab::_recipes/synthetic.py from the
# ShapeCorpus-pretrained SmallResNet (deeplab::_recipes/synthetic_pretrained.py), here with
# 750 iterations instead of 1500 (the one change from the methods' own configs, to fit the
# run in 2.75 hours alone on 2 cores with the stand-ins cached).  The Pretrain stages (five
# backbones, up to 20 minutes each on 2 cores, 78 minutes together alone) are cached in
# $WSSS_CACHE/pretrained and shared with every other config that pretrains the same way.
# Left out to fit the time (each runs from its own config): the plain-ViT GETAM
# (getam::synthetic_pretrained.py; its stand-in does not learn the corpus in its budget,
# docs/pretraining.md), MoANA's plain-CAM IRN arm (base_*), the from-scratch configs
# (<plugin>::synthetic.py) and OAA's late-accumulation ablation.
_base_ = ['core::quickstart_pretrained.py', 'deeplab::_recipes/synthetic_pretrained.py']
from wsss_core.config_compose import stages_from  # noqa: E402  (after _base_: see its docstring)

work_dir = 'work_dirs/zoo'
plugins = ['deeplab', 'oaa', 'nsrom', 'edam', 'moana', 'getam']

#: the zoo's one DeepLab recipe: from the pretrained SmallResNet, 750 iterations
_zoo_deeplab = {'*deeplab*': dict(_base_.deeplab_pretrained, max_iters=750)}

stages = dict(
    **stages_from('deeplab::synthetic_pretrained.py', ['deeplab', 'test'], update=_zoo_deeplab),
    **stages_from('nsrom::synthetic_pretrained.py', ['oaa_*', 'eval_oaa_*'],
                  exclude=['*oaa_late_*'], update=_zoo_deeplab),
    **stages_from('nsrom::synthetic_pretrained.py', ['nsrom_*', 'eval_nsrom_*'],
                  update=_zoo_deeplab),
    **stages_from('edam::synthetic_pretrained.py', ['edam_*', 'eval_edam_*'],
                  update=_zoo_deeplab),
    **stages_from('moana::synthetic_pretrained.py',
                  ['moana_pretrain', 'moana_*', 'eval_moana_*'],
                  update=_zoo_deeplab),
    **stages_from('getam::synthetic_hybrid_pretrained.py', ['getam_hybrid*', 'eval_getam_hybrid*']),
)

# the methods of the comparison page (wsss-report --compare work_dirs/zoo): roles -> stages
compare = dict(
    baseline=dict(classifier='classify', cams='cams', labels='labels_saliency',
                  segmenter='test', segmenter_crf='test'),
    oaa=dict(classifier='oaa_classify', cams='oaa_accumulated', labels='oaa_labels',
             segmenter='oaa_test', segmenter_crf='oaa_test'),
    oaa_iam=dict(classifier='oaa_classify', cams='oaa_iam_cams', labels='oaa_iam_labels'),
    nsrom=dict(classifier='nsrom_classify', cams='nsrom_oacams', labels='nsrom_masked',
               segmenter='nsrom_test', segmenter_crf='nsrom_test'),
    edam=dict(classifier='eval_edam_classify', cams='edam_masks', labels='edam_labels_crf_sal',
              segmenter='edam_test', segmenter_crf='edam_test'),
    moana=dict(classifier='moana_classify', cams='moana_cams', labels='moana_rw_labels',
               segmenter='moana_test', segmenter_crf='moana_test'),
    getam=dict(classifier='getam_hybrid', cams='getam_hybrid_maps',
               labels='getam_hybrid_online_labels', segmenter='getam_hybrid_test',
               segmenter_crf='getam_hybrid_test'),
)
