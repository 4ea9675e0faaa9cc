"""The author's way, one unit per process (docs/method.md#feature-visualizations, center_lucent_optimize.py): lucent render_vis,
batch 1, the spec's transforms, objective neuron(layer, c), Adam lr 0.05, ImageNet normalisation.
Used by bench_fv.py only. Prints the final image as .npy to the given path."""

import sys
import warnings

warnings.simplefilter("ignore")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from lucent.optvis import objectives, param, render, transform  # noqa: E402

layer, channel, steps, jitter, seed, threads, out = sys.argv[1:8]
torch.set_num_threads(int(threads))
torch.manual_seed(int(seed))
model = torchvision.models.resnet18(weights=None).eval()  # = resstream's random:SEED
j = int(jitter)
tf = [transform.random_scale([1, 0.975, 1.025, 0.95, 1.05]), transform.random_rotate(list(range(-5, 6)))]
if j >= 4:
    crop = torchvision.transforms.CenterCrop(224)
    tf = [transform.pad(j), transform.jitter(j)] + tf + ([transform.jitter(j // 2)] if j // 2 > 1 else []) + [crop]
images = render.render_vis(
    model,
    objectives.neuron(layer.replace(".", "_"), int(channel)),
    param_f=lambda: param.image(224, decorrelate=True),
    transforms=tf,
    thresholds=(int(steps),),
    show_image=False,
    progress=False,
)
np.save(out, images[-1][0])
