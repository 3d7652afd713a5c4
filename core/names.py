"""Names shared by every layer: method titles, head names and the output file names."""

METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "gradcam_plus_plus": "Grad-CAM++",
    "scorecam": "Score-CAM",
    "layercam": "Layer-CAM",
    "hirescam": "HiResCAM",
    "saliency": "Saliency",
    "vanilla_saliency": "Saliency",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated Gradients",
    "occlusion": "Occlusion",
    "tfkv_gradcam": "Grad-CAM (tf-keras-vis)",
}

# Methods whose maps are signed score drops (reliance), not non-negative attention: averaged and drawn as
# they are (diverging colour scale around 0) instead of clipped and scaled to unit mass.
SIGNED_METHODS = frozenset({"occlusion"})

# The two softmax heads of the precursor classifiers, in their canonical order.
HEADS = ("magnitude", "azimuth")

# Files a run writes into <run dir>/<model>/ and a sweep into <sweep dir>/comparison/.
RESULTS_FILE = "visualization_results.json"
DATASET_FILE = "dataset_results.json"
STATUS_FILE = "status.json"
RESULT_FILES = (RESULTS_FILE, DATASET_FILE)
COMPARISON_DIR = "comparison"
COMPARISON_JSON = "comparison.json"
COMPARISON_REPORT = "GRADCAM_COMPARISON_REPORT.md"
