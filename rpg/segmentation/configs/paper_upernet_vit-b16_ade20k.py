# Paper scale (Tab. 2): UperNet with a ViT-B/16 backbone and multi-level neck on ADE20K, mmsegmentation's own
# 160k-iteration config, unchanged except BatchNorm for SyncBN when it runs in one process (our collection loop is
# single-process; multi-GPU users may keep SyncBN through the recipe's model_overrides).
_base_ = ["mmseg::vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py"]
norm_cfg = dict(type="BN", requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(init_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg),
)
