"""What a prediction relies on, in physical regions: region partition, occlusion references, results, agreement."""
