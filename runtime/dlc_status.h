/* dlc runtime: what the entry points of a library return, DLC_OK or a negative code.
 * The library headers (templates/model.h.j2, train.h.j2) paste this enum. */
#ifndef DLC_STATUS_H
#define DLC_STATUS_H

enum {
    DLC_OK = 0,
    DLC_ERR_NULL = -1,          /* a pointer argument is NULL */
    DLC_ERR_BATCH = -2,         /* no rows */
    DLC_ERR_NONFINITE = -3,     /* the input, or a training step's cost, is NaN or inf */
    DLC_ERR_INDEX = -4          /* a row index of a training order is out of range */
};

#endif
