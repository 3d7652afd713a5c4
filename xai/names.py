"""Display names of the explanation methods (figures and reports share them)."""

METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "gradcam_plus_plus": "Grad-CAM++",
    "scorecam": "Score-CAM",
    "layercam": "Layer-CAM",
    "saliency": "Saliency",
    "vanilla_saliency": "Saliency",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated Gradients",
    "occlusion": "Occlusion",
    "tfkv_gradcam": "Grad-CAM (tf-keras-vis)",
}
