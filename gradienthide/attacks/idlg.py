"""Improved DLG (Zhao et al., 2020): the label first, analytically, then DLG on the image.

For cross-entropy, the gradient of the logits' bias is softmax - onehot: negative only at the
true class of a single image, so the label is read off the last layer's gradient (for a
batch, the classes with a negative bias gradient, see `recover_labels`). The images are
then optimised as in DLG with the labels fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradienthide.attacks.base import classifier_bias_name, recover_labels
from gradienthide.attacks.dlg import DeepLeakage


@dataclass
class ImprovedDeepLeakage(DeepLeakage):
    name = "idlg"

    def target_labels(self, model, target):
        return recover_labels(target.update, classifier_bias_name(model), target.num_samples)
