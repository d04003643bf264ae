"""The poster's Keras example, repaired: keyword metrics, learning_rate, and a return."""

import keras
from keras.layers import Dense, Dropout
from keras.models import Sequential


def model(idim):
    ml_model = Sequential(
        [
            keras.Input((idim,)),
            Dense(128, activation="relu"),
            Dropout(0.5),
            Dense(64, activation="relu"),
            Dropout(0.5),
            Dense(1, activation="sigmoid"),
        ]
    )
    ml_model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return ml_model
