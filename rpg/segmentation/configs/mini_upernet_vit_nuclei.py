# Mini scale (CPU): the paper's model family, UperNet on a ViT backbone with a multi-level neck (mmseg's
# upernet_vit-b16_ln_mln base, the one the paper config below extends too), shrunk to ~80k parameters for 64x64
# single-channel nuclei tiles and 2 classes (background, nucleus). BatchNorm replaces SyncBN (one process, CPU).
_base_ = ["mmseg::_base_/models/upernet_vit-b16_ln_mln.py"]
crop_size = (64, 64)
norm_cfg = dict(type="BN", requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(mean=[0.0], std=[255.0], bgr_to_rgb=False, size=crop_size, seg_pad_val=255),
    backbone=dict(img_size=crop_size, patch_size=8, in_channels=1, embed_dims=32, num_layers=4, num_heads=2,
                  mlp_ratio=2, out_indices=(0, 1, 2, 3), init_cfg=None),
    neck=dict(in_channels=[32, 32, 32, 32], out_channels=16, scales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[16, 16, 16, 16], channels=16, num_classes=2, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=16, channels=16, num_classes=2, norm_cfg=norm_cfg),
)
