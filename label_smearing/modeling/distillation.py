"""Online distillation: a student trained beside its frozen teacher, the teacher's logits its targets.

`OnlineTeacher` runs both networks on the same (augmented) batch and outputs
[student logits | teacher logits]; `AgainstOnlineTeacher` applies a distillation loss
(e.g. `losses.DistillationCrossEntropy`) to the two halves, `online_teacher_agreement` is
the accuracy metric, and `network_of` is the network that trains and is saved.
"""

from __future__ import annotations

import keras


class OnlineTeacher(keras.Model):
    """A student beside its frozen teacher: images -> [student logits | teacher logits], (B, 2L).

    The teacher is not trainable, always runs in inference mode (batch norm with its
    moving statistics, whatever `training` fit passes) and passes no gradient, so it
    never changes; `student` is the network that trains and is saved.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, **kwargs):
        super().__init__(**kwargs)
        teacher.trainable = False
        self.student, self.teacher = student, teacher
        self.built = True  # both networks hold their weights already (BackupAndRestore needs a built model)

    def call(self, images, training=None):
        teacher_logits = keras.ops.stop_gradient(self.teacher(images, training=False))
        return keras.ops.concatenate([self.student(images, training=training), teacher_logits], axis=-1)


def network_of(model: keras.Model) -> keras.Model:
    """The network that trains and is saved: an OnlineTeacher's student, else the model itself."""
    return model.student if isinstance(model, OnlineTeacher) else model


class AgainstOnlineTeacher(keras.losses.Loss):
    """`loss(teacher logits, student logits)` on an OnlineTeacher's output; y_true (the exported logits) is unused."""

    def __init__(self, loss: keras.losses.Loss):
        super().__init__(name=loss.name, reduction=loss.reduction)
        self.loss = loss

    def call(self, y_true, y_pred):
        student_logits, teacher_logits = keras.ops.split(y_pred, 2, axis=-1)
        return self.loss.call(teacher_logits, student_logits)


def online_teacher_agreement(y_true, y_pred):
    """Whether the student's top label is the online teacher's, per example."""
    student_logits, teacher_logits = keras.ops.split(y_pred, 2, axis=-1)
    return keras.metrics.categorical_accuracy(teacher_logits, student_logits)
